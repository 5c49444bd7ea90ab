"""The pure core: matrix files → validated model → lock file model → rendered build contexts →
content identity. Nothing here talks to a Docker engine, a registry, the network or another process
(tests/unit/test_architecture.py checks it); it reads and writes only the project's own files."""
