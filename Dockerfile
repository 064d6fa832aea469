# oncall: one container; Redis runs beside it (see docker-compose.yml).
FROM python:3.11-slim

# Everything the container makes up lives in the /data volume, each secret mode 0600: the
# database, the link-signing key, and the tokens `init` generates for the directory file's
# unset ${VAR}s (read them: docker compose exec oncall cat /data/oncall.env).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ONCALL_DATABASE_URL=sqlite+aiosqlite:////data/oncall.db \
    ONCALL_DIRECTORY_ENV_FILE=/data/oncall.env \
    ONCALL_SECURITY_SECRET_KEY_FILE=/data/secret.key

RUN useradd --create-home --uid 10001 oncall && mkdir /data && chown oncall /data
WORKDIR /app
COPY requirements.txt .
# The same install step as .ci/run and the README.
RUN python -m pip install --no-cache-dir -r requirements.txt
COPY app.py settings.ini oncall.example.yaml ./
COPY oncall ./oncall

USER oncall
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4).status == 200 else 1)"
# init writes only the tokens still missing (never changes one), then the service replaces
# the shell so it gets the signals.
CMD ["sh", "-c", "python app.py init && exec python app.py"]
