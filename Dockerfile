# oncall: one container; Redis runs beside it (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ONCALL_DATABASE_URL=sqlite+aiosqlite:////data/oncall.db

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
CMD ["python", "app.py"]
