# Rendered by imagekit from templates/Extension.Dockerfile.j2 for 2.6.0-cu121-py3.11-runtime-tracking, an extension
# (tracking) of 2.6.0-cu121-py3.11-runtime. Do not edit: edit the template or matrix.yaml and run `imagekit render`.
#
# imagekit passes IMAGEKIT_PARENT as the parent's exact content: its registry digest once it has one,
# before that its content tag (checked against the parent's image id before and after the build).
# The default only serves a manual `docker build` of this file.
ARG IMAGEKIT_PARENT=imagekit/pytorch:2.6.0-cu121-py3.11-runtime
FROM ${IMAGEKIT_PARENT}

# The parent ends as its non-root user; installing needs root (uid 0), the last USER below restores it.
USER 0

# git: apt-extension.txt holds them at the versions the lock file pins, with the
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

ENV TRACKING_LOGDIR="/opt/runs"

# From extensions/tracking/Dockerfile.j2:
# Runs land in one folder the image's user owns, so a mounted volume there collects every run.
RUN install -d -o 1000 -g 1000 "$TRACKING_LOGDIR"

ENV IMAGEKIT_IMAGE_ID=2.6.0-cu121-py3.11-runtime-tracking
# The package manifest, rewritten to cover what the extension added (see Dockerfile.j2).
RUN --mount=type=bind,source=write_manifest.py,target=/run/imagekit/write_manifest.py \
    --mount=type=bind,source=layers.json,target=/run/imagekit/layers.json \
    /opt/venv/bin/python /run/imagekit/write_manifest.py > /opt/imagekit/manifest.json
LABEL org.opencontainers.image.title="pytorch" \
      org.opencontainers.image.version="2.6.0-cu121-py3.11-runtime-tracking" \
      io.imagekit.image-id="2.6.0-cu121-py3.11-runtime-tracking" \
      io.imagekit.flavor="runtime" \
      io.imagekit.torch="2.6.0" \
      io.imagekit.torchaudio="2.6.0" \
      io.imagekit.python="3.11" \
      io.imagekit.cuda="12.1.1" \
      io.imagekit.wheel="cu124" \
      io.imagekit.wheel-cuda="12.4" \
      io.imagekit.driver-min="525.60.13" \
      io.imagekit.extension="tracking" \
      io.imagekit.parent="2.6.0-cu121-py3.11-runtime"

USER 1000
WORKDIR /home/imagekit
