#!/bin/sh
# The one way Homeport starts in a container (deploy/Dockerfile) and on Kubernetes (deploy/k8s):
# bring the schema up to date, then serve. Migrations are safe when replicas start together.
# Settings come from HOMEPORT_* variables and, if present, the config file HOMEPORT_CONFIG names.
set -eu
homeport migrate
exec homeport serve --host "${HOMEPORT_HOST:-0.0.0.0}" --port "${HOMEPORT_PORT:-8080}" "$@"
