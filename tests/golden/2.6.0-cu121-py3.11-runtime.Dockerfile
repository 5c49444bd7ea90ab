# Rendered by imagekit from templates/Dockerfile.j2 for 2.6.0-cu121-py3.11-runtime. Do not edit: edit the
# template or matrix.yaml and run `imagekit render`.
#
# No `# syntax=` line on purpose: it makes BuildKit pull a frontend image from Docker Hub, which
# offline and air-gapped hosts cannot do; the built-in frontend (BuildKit >= 0.8) already supports
# the cache and secret mounts used below.

# Runtime images start from a CUDA "base" image (or a plain OS), not "runtime"/"cudnn-runtime":
# the torch wheels bring their own CUDA 12.4 user-space libraries and cuDNN 9 as nvidia-* pip
# packages, found by rpath, so a runtime base would duplicate gigabytes torch never loads.
# imagekit passes IMAGEKIT_BASE as the base pinned in the lock file: its registry digest, or for
# a local base its tag once checked against the locked image id. The default serves a manual build.
ARG IMAGEKIT_BASE=nvidia/cuda:12.1.1-base-ubuntu22.04
FROM ${IMAGEKIT_BASE} AS system

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Python 3.11 from the distribution, when the base lacks it (a site's own base may have
# it). apt-system.txt holds the packages at the exact versions the lock file pins, dependencies
# included, and is empty when the base has that Python with venv: apt installs nothing else.
RUN --mount=type=bind,source=apt-system.txt,target=/run/imagekit/apt-system.txt \
    if [ -s /run/imagekit/apt-system.txt ]; then \
        apt-get update \
        && xargs -a /run/imagekit/apt-system.txt apt-get install -y --no-install-recommends \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/*.log /var/log/apt/eipp.log.xz /var/log/dpkg.log /var/cache/ldconfig/aux-cache; \
    fi

# Non-root by default. Override with `docker run --user root`, or `USER root` in a derived image.
# useradd writes the day it runs into /etc/shadow (the password's last change) unless
# SOURCE_DATE_EPOCH says otherwise: a fixed day 1, so builds on different days write the same
# bytes (0 would mean "change the password at next login"; the account has none anyway).
RUN SOURCE_DATE_EPOCH=86400 useradd --create-home --uid 1000 --shell /bin/bash imagekit

FROM system AS torch

# The venv alone first: its layer is the same for every image on this base and Python.
# SOURCE_DATE_EPOCH (any value) makes the .pyc files that ensurepip (pip itself), and pip below,
# compile carry source hashes instead of install times: two builds write the same bytes
# (`imagekit verify`).
RUN SOURCE_DATE_EPOCH=0 python3.11 -m venv /opt/venv

# The locked set, one layer per group of the layer plan (README "Layers"), the groups that change
# least first: a changed pin rebuilds its own layer and those after it, and the gigabytes below
# stay the same layers. Each requirements-<layer>.txt is that group's part of the lock file, every
# package pinned with its hashes (pip installs exactly that or fails; --no-deps, since the groups
# together are the whole set). pip's settings (index URL, possibly with credentials, and CA
# bundle) arrive as the BuildKit secret `pip.conf` and never land in a layer; pip's download cache
# is a cache mount, so it neither bloats the image nor is fetched again on rebuilds.

# Layer "cuda": nvidia-*.
RUN --mount=type=cache,id=imagekit-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip.conf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=pip-ca.pem,target=/run/secrets/pip-ca.pem \
    --mount=type=bind,source=requirements-cuda.txt,target=/run/imagekit/requirements-cuda.txt \
    SOURCE_DATE_EPOCH=0 PIP_CONFIG_FILE=/run/secrets/pip.conf /opt/venv/bin/pip install --progress-bar off \
        --require-hashes --no-deps -r /run/imagekit/requirements-cuda.txt

# Layer "torch": torch, torchaudio, triton, with what they need that no layer before holds.
RUN --mount=type=cache,id=imagekit-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip.conf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=pip-ca.pem,target=/run/secrets/pip-ca.pem \
    --mount=type=bind,source=requirements-torch.txt,target=/run/imagekit/requirements-torch.txt \
    SOURCE_DATE_EPOCH=0 PIP_CONFIG_FILE=/run/secrets/pip.conf /opt/venv/bin/pip install --progress-bar off \
        --require-hashes --no-deps -r /run/imagekit/requirements-torch.txt

# Layer "numpy": numpy.
RUN --mount=type=cache,id=imagekit-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip.conf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=pip-ca.pem,target=/run/secrets/pip-ca.pem \
    --mount=type=bind,source=requirements-numpy.txt,target=/run/imagekit/requirements-numpy.txt \
    SOURCE_DATE_EPOCH=0 PIP_CONFIG_FILE=/run/secrets/pip.conf /opt/venv/bin/pip install --progress-bar off \
        --require-hashes --no-deps -r /run/imagekit/requirements-numpy.txt

# Layer "rest": what no other layer takes.
RUN --mount=type=cache,id=imagekit-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip.conf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=pip-ca.pem,target=/run/secrets/pip-ca.pem \
    --mount=type=bind,source=requirements-rest.txt,target=/run/imagekit/requirements-rest.txt \
    SOURCE_DATE_EPOCH=0 PIP_CONFIG_FILE=/run/secrets/pip.conf /opt/venv/bin/pip install --progress-bar off \
        --require-hashes --no-deps -r /run/imagekit/requirements-rest.txt

ENV PATH=/opt/venv/bin:$PATH \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# What the image promises; the smoke suite checks it (see imagekit/render.py: expectations).
ENV IMAGEKIT_IMAGE_ID=2.6.0-cu121-py3.11-runtime \
    IMAGEKIT_EXPECT_TORCH=2.6.0 \
    IMAGEKIT_EXPECT_TORCHAUDIO=2.6.0 \
    IMAGEKIT_EXPECT_PYTHON=3.11 \
    IMAGEKIT_EXPECT_CUDA=12.4 \
    IMAGEKIT_EXPECT_DRIVER_MIN=525.60.13

# The package manifest (pip and apt packages with versions and sizes, CUDA libraries) read by
# `imagekit manifest`, `imagekit diff` and the size budget; written last, so it sees everything.
RUN --mount=type=bind,source=write_manifest.py,target=/run/imagekit/write_manifest.py \
    --mount=type=bind,source=layers.json,target=/run/imagekit/layers.json \
    mkdir -p /opt/imagekit \
    && /opt/venv/bin/python /run/imagekit/write_manifest.py > /opt/imagekit/manifest.json

LABEL org.opencontainers.image.title="pytorch" \
      org.opencontainers.image.version="2.6.0-cu121-py3.11-runtime" \
      io.imagekit.image-id="2.6.0-cu121-py3.11-runtime" \
      io.imagekit.flavor="runtime" \
      io.imagekit.torch="2.6.0" \
      io.imagekit.torchaudio="2.6.0" \
      io.imagekit.python="3.11" \
      io.imagekit.cuda="12.1.1" \
      io.imagekit.wheel="cu124" \
      io.imagekit.wheel-cuda="12.4" \
      io.imagekit.driver-min="525.60.13"

USER 1000
WORKDIR /home/imagekit
CMD ["python"]
