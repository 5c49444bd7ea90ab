# Rendered by imagekit from templates/Extension.Dockerfile.j2 for 2.6.0-cu118-py3.11-runtime-jupyter, an extension
# (jupyter) of 2.6.0-cu118-py3.11-runtime. Do not edit: edit the template or matrix.yaml and run `imagekit render`.
#
# imagekit passes IMAGEKIT_PARENT as the parent's exact content: its registry digest once it has one,
# before that its content tag (checked against the parent's image id before and after the build).
# The default only serves a manual `docker build` of this file.
ARG IMAGEKIT_PARENT=imagekit/pytorch:2.6.0-cu118-py3.11-runtime
FROM ${IMAGEKIT_PARENT}

# The parent ends as its non-root user; installing needs root (uid 0), the last USER below restores it.
USER 0

# tini: apt-extension.txt holds them at the versions the lock file pins, with the
# dependencies the parent lacks.
RUN --mount=type=bind,source=apt-extension.txt,target=/run/imagekit/apt-extension.txt \
    apt-get update \
    && xargs -a /run/imagekit/apt-extension.txt apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/*.log /var/log/apt/eipp.log.xz /var/log/dpkg.log /var/cache/ldconfig/aux-cache

# requirements.txt is the extension's set from the lock file (its parent's set plus its own
# packages, resolved with the parent's versions as constraints), every package pinned with its
# hashes. Everything the parent has installed is a constraint here too: an extension adds
# packages, it never swaps out the torch stack its parent was tested with. SOURCE_DATE_EPOCH: see
# Dockerfile.j2 (hash-based .pyc files, the same bytes on every build).
RUN --mount=type=cache,id=imagekit-pip,target=/root/.cache/pip \
    --mount=type=secret,id=pip.conf,target=/run/secrets/pip.conf \
    --mount=type=secret,id=pip-ca.pem,target=/run/secrets/pip-ca.pem \
    --mount=type=bind,source=requirements.txt,target=/run/imagekit/requirements.txt \
    /opt/venv/bin/pip list --format=freeze > /tmp/parent-constraints.txt \
    && SOURCE_DATE_EPOCH=0 PIP_CONFIG_FILE=/run/secrets/pip.conf /opt/venv/bin/pip install --progress-bar off \
        --require-hashes --no-deps --constraint /tmp/parent-constraints.txt -r /run/imagekit/requirements.txt \
    && rm /tmp/parent-constraints.txt

# From extensions/jupyter/Dockerfile.j2:
# The server's settings, where a venv's Jupyter reads them first: listen on every interface (for
# `-p 8888:8888`), serve /data, never ask the network (news, update checks, extension manager;
# and JupyterLab's own settings, so it does not ask the user about news either), no build check
# (there is no node.js to build with), no "change password" form that would replace the token,
# and encrypted kernel channels. The websocket
# keep-alive stays as shipped (ping every 30 s, closed after 90 s without a pong): a timeout no
# longer than the interval, which would quiet tornado's warning about it on the first kernel
# connection (jupyter-server/jupyter_server#1612), closes every kernel connection at its first ping.
RUN install -d /opt/venv/etc/jupyter/labconfig /opt/venv/share/jupyter/lab/settings \
    && printf '%s\n' \
        'c.ServerApp.ip = "0.0.0.0"' \
        'c.ServerApp.port_retries = 0' \
        'c.ServerApp.root_dir = "/data"' \
        'c.ServerApp.open_browser = False' \
        'c.PasswordIdentityProvider.allow_password_change = False' \
        'c.LabApp.news_url = None' \
        'c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"' \
        'c.LabApp.extension_manager = "readonly"' \
        'c.MappingKernelManager.transport_encryption = "required"' \
        > /opt/venv/etc/jupyter/jupyter_server_config.py \
    && printf '%s\n' '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
        > /opt/venv/share/jupyter/lab/settings/overrides.json \
    && printf '%s\n' '{"buildAvailable": false, "buildCheck": false}' > /opt/venv/etc/jupyter/labconfig/page_config.json
# start-jupyter: the token is JUPYTER_TOKEN when the user gives one, else a new random one for each
# start, printed once (the server itself would print a token it made four times, once as CRITICAL);
# it is never in the image. A token or password on the command line is refused: it would show in
# `docker inspect` and `ps`, and an empty one would turn authentication off. (SC2016: the script's
# own $-expressions are meant to reach the file unexpanded.)
# hadolint ignore=SC2016
RUN printf '%s\n' \
        '#!/bin/sh' \
        'set -eu' \
        'for arg in "$@"; do' \
        '  case "$arg" in' \
        '    *[Tt]oken*|*[Pp]assword*) echo "start-jupyter: give the token through JUPYTER_TOKEN, not as an argument" >&2; exit 2 ;;' \
        '  esac' \
        'done' \
        'if [ -z "${JUPYTER_TOKEN:-}" ]; then' \
        '  JUPYTER_TOKEN=$(/opt/venv/bin/python -c "import secrets; print(secrets.token_hex(24))")' \
        '  export JUPYTER_TOKEN' \
        '  echo "JupyterLab: http://127.0.0.1:${JUPYTER_PORT:-8888}/lab?token=$JUPYTER_TOKEN (from elsewhere: this host name and the port you published)"' \
        'fi' \
        'exec /opt/venv/bin/jupyter lab "$@"' \
        > /usr/local/bin/start-jupyter \
    && chmod 0755 /usr/local/bin/start-jupyter
# Notebooks live in /data, owned by the image's user before it becomes a volume (a step after VOLUME
# cannot change it). matplotlib's font cache is built now, so the first plot neither waits nor warns.
RUN install -d -o 1000 -g 1000 /data \
    && HOME=/home/imagekit /opt/venv/bin/python -c "import matplotlib.pyplot" \
    && chown -R 1000:1000 /home/imagekit
VOLUME ["/data"]
EXPOSE 8888
# /api answers without a token and does not count as activity (idle culling still works).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/api' % os.environ.get('JUPYTER_PORT', '8888'), timeout=4)"]
# tini as PID 1 reaps the kernels' children and passes signals on; -s keeps it working under
# `docker run --init` too. A command given to `docker run` replaces start-jupyter, not tini.
ENTRYPOINT ["/usr/bin/tini", "-s", "--"]
CMD ["start-jupyter"]

ENV IMAGEKIT_IMAGE_ID=2.6.0-cu118-py3.11-runtime-jupyter
# The package manifest, rewritten to cover what the extension added (see Dockerfile.j2).
RUN --mount=type=bind,source=write_manifest.py,target=/run/imagekit/write_manifest.py \
    --mount=type=bind,source=layers.json,target=/run/imagekit/layers.json \
    /opt/venv/bin/python /run/imagekit/write_manifest.py > /opt/imagekit/manifest.json
LABEL org.opencontainers.image.title="pytorch" \
      org.opencontainers.image.version="2.6.0-cu118-py3.11-runtime-jupyter" \
      io.imagekit.image-id="2.6.0-cu118-py3.11-runtime-jupyter" \
      io.imagekit.flavor="runtime" \
      io.imagekit.torch="2.6.0" \
      io.imagekit.torchaudio="2.6.0" \
      io.imagekit.python="3.11" \
      io.imagekit.cuda="11.8.0" \
      io.imagekit.wheel="cu118" \
      io.imagekit.wheel-cuda="11.8" \
      io.imagekit.driver-min="450.80.02" \
      io.imagekit.extension="jupyter" \
      io.imagekit.parent="2.6.0-cu118-py3.11-runtime"

USER 1000
WORKDIR /home/imagekit
