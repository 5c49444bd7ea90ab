"""Code the smoke tests share: the audio pipeline and model (audio.py) and timing (timing.py).
It needs only torch and torchaudio, so it runs inside any image and on a bare host."""
