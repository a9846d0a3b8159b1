# Placeholder: the container image is built in the operations issue.
# This file deliberately fails so that nobody mistakes it for a working image.
FROM python:3.11-slim
RUN echo "deepcall-gateway: the Dockerfile is a placeholder; see README 'Deployment'" >&2 && exit 1
