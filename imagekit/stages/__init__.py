"""The steps of a run (lock, build, test, verify, publish, inspect, doctor): each takes the core's
objects and adapters and returns typed outcomes; none prints a summary or decides an exit code."""
