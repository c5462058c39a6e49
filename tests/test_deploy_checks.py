"""What an operator deploys: production settings pass `check --deploy`, the files in deploy/
say what the settings read, and the replica router keeps writes and transactions on the
primary."""

import os
import re
import runpy
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from django.db import transaction

from registry import db_router
from registry.db_router import PrimaryReplicaRouter
from registry.models import ApiKey, AuditEvent, Case, CaseIdentifier, Lookup, Sighting

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SETTING_READERS = re.compile(r'env_(?:str|int|bool|list|secret)\(\s*"([A-Z0-9_]+)"')


def production_env(tmp_path: Path, **overrides) -> dict:
    """The environment of a production process, with its secrets in files (as systemd
    credentials or Docker secrets would hand them over)."""
    secrets = {
        "DJANGO_SECRET_KEY": "p" * 20 + "-production-secret-key-with-enough-entropy-" + "q" * 20,
        "REGISTRY_OPRF_SEED": "3c" * 32,
        "REGISTRY_PEPPER": "4d" * 32,
        "REGISTRY_AUDIT_SEAL_KEY": "5e" * 32,
        "REGISTRY_AUDIT_SIGNING_SEED": "6f" * 32,
        "REDIS_PASSWORD": "5e" * 16,
    }
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "DJANGO_", "REDIS_"))
    }
    for name, value in secrets.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n", encoding="utf-8")
        env[f"{name}_FILE"] = str(path)
    env.update(
        REGISTRY_ENV="production",
        ALLOWED_HOSTS="registry.example",
        CSRF_TRUSTED_ORIGINS="https://registry.example",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        CELERY_BROKER_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(overrides)
    return env


def run_manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_passes_check_deploy_under_production_settings(tmp_path):
    result = run_manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)" in result.stdout, result.stdout


def test_it_silences_no_check():
    # Lockouts count per username AND address now, so axes.W006 has nothing to say.
    assert getattr(django_settings, "SILENCED_SYSTEM_CHECKS", []) == []


def test_it_warns_about_a_redis_without_password_and_adds_the_password_to_both_urls(tmp_path):
    env = production_env(tmp_path)
    del env["REDIS_PASSWORD_FILE"]
    result = run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0 and "registry.W003" in result.stderr

    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.REDIS_URL, s.CELERY_BROKER_URL)"
    )
    env = production_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="consortium.settings",
        REDIS_URL="redis://redis:6379/0",
        CELERY_BROKER_URL="redis://redis:6379/1",
    )
    urls = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    secret = "5e" * 16
    assert urls.stdout.strip().splitlines()[-1] == (
        f"redis://:{secret}@redis:6379/0 redis://:{secret}@redis:6379/1"
    )


def test_it_fails_check_deploy_when_production_is_weakened(tmp_path):
    env = production_env(tmp_path, SECURE_HSTS_SECONDS="0", SECURE_SSL_REDIRECT="false")
    result = run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_it_refuses_to_start_production_without_secrets(tmp_path):
    env = production_env(tmp_path)
    del env["REGISTRY_PEPPER_FILE"]
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "REGISTRY_PEPPER" in result.stderr


def test_it_fails_the_system_check_in_production_without_the_audit_keys(tmp_path):
    for name, check_id in (
        ("REGISTRY_AUDIT_SEAL_KEY", "registry.E004"),
        ("REGISTRY_AUDIT_SIGNING_SEED", "registry.E005"),
    ):
        env = production_env(tmp_path)
        del env[f"{name}_FILE"]
        result = run_manage(env, "check")
        assert result.returncode != 0
        assert check_id in result.stderr and name in result.stderr


@pytest.mark.django_db
def test_it_sends_a_content_security_policy_without_inline_scripts_on_pages(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy).group(1)
    assert script_src == "'self'"
    assert "frame-ancestors 'none'" in policy
    assert InlineScripts.found_in(response.content.decode()) == []


def test_it_serves_the_api_docs_without_inline_scripts(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert InlineScripts.found_in(response.content.decode()) == []


def test_it_lets_json_answers_load_nothing(client):
    response = client.get("/healthz")
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


class InlineScripts(HTMLParser):
    """Executable <script> elements without src (JSON data blocks are not executed)."""

    def __init__(self):
        super().__init__()
        self.inline: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        kind = attributes.get("type", "text/javascript")
        if tag == "script" and "src" not in attributes and "json" not in kind:
            self.inline.append(str(attributes))

    @classmethod
    def found_in(cls, html: str) -> list[str]:
        parser = cls()
        parser.feed(html)
        return parser.inline


def test_it_reads_the_environment_only_through_the_settings_helpers():
    # Otherwise a variable could escape the check below: only env_str() and its siblings
    # (defined at the top of settings.py) may touch os.environ.
    source = (ROOT / "consortium" / "settings.py").read_text()
    _, _, rest = source.partition("\ndef database_from_url")
    assert rest and re.search(r"os\.environ|getenv", rest) is None


def test_it_lists_every_setting_in_the_env_example():
    settings_source = (ROOT / "consortium" / "settings.py").read_text()
    read = set(SETTING_READERS.findall(settings_source))
    read |= set(re.findall(r'"(GUNICORN_[A-Z_]+)"', (DEPLOY / "gunicorn.conf.py").read_text()))
    example = (DEPLOY / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert len(read) > 40
    assert sorted(read - listed) == []
    # A secret is read from NAME_FILE as well as NAME: both are settings an operator sets.
    secrets = re.findall(r'env_secret\(\s*"([A-Z0-9_]+)"', settings_source)
    assert secrets
    assert sorted(f"{name}_FILE" for name in secrets if f"{name}_FILE" not in listed) == []
    # Each variable is explained by the comment right above it (or above its group of
    # alternatives, such as NAME_FILE and NAME).
    assignment = re.compile(r"^#? ?[A-Z][A-Z0-9_]+=")
    lines = example.splitlines()
    for index, line in enumerate(lines):
        if assignment.match(line):
            above = next(text for text in reversed(lines[:index]) if not assignment.match(text))
            assert above.startswith("# ") and len(above) > 10, line


def test_it_keeps_secret_values_out_of_the_env_example():
    example = (DEPLOY / ".env.example").read_text()
    for name in (
        "DJANGO_SECRET_KEY",
        "REGISTRY_OPRF_SEED",
        "REGISTRY_PEPPER",
        "DATABASE_PASSWORD",
        "DATABASE_OWNER_PASSWORD",
        "REGISTRY_AUDIT_SEAL_KEY",
        "REGISTRY_AUDIT_SIGNING_SEED",
        "REDIS_PASSWORD",
    ):
        assert re.search(rf"^{name}=\S", example, flags=re.MULTILINE) is None
        assert re.search(rf"^{name}=", example, flags=re.MULTILINE) is None


def gunicorn_config(monkeypatch, **env) -> dict:
    for name in [n for n in os.environ if n.startswith("GUNICORN_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))


def test_it_configures_gunicorn_from_the_environment(monkeypatch):
    config = gunicorn_config(
        monkeypatch,
        GUNICORN_BIND="127.0.0.1:9001",
        GUNICORN_WORKERS="3",
        GUNICORN_THREADS="4",
        GUNICORN_TIMEOUT="12",
    )
    assert config["bind"] == ["127.0.0.1:9001"]
    assert (config["workers"], config["threads"], config["timeout"]) == (3, 4, 12)
    assert config["worker_class"] == "gthread"
    assert config["preload_app"] is True


def test_it_defaults_gunicorn_to_loopback_and_sync_workers(monkeypatch):
    config = gunicorn_config(monkeypatch)
    assert config["bind"] == ["127.0.0.1:8000"]
    assert config["workers"] == 2 * os.cpu_count() + 1
    assert config["worker_class"] == "sync"


def test_it_logs_access_without_query_strings(monkeypatch):
    from datetime import timedelta
    from types import SimpleNamespace

    config = gunicorn_config(monkeypatch)
    lines = []
    logger = config["JsonAccessLogger"].__new__(config["JsonAccessLogger"])
    logger.cfg = SimpleNamespace(accesslog="-", logconfig=None, syslog=False)
    logger.access_log = SimpleNamespace(info=lines.append)
    response = SimpleNamespace(status="200 OK", sent=12, headers=[("X-Request-Id", "abc")])
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/v1/compliance/subject-access",
        "QUERY_STRING": "kind=phone&token=" + "ab" * 64,
        "REMOTE_ADDR": "127.0.0.1",
    }
    logger.access(response, None, environ, timedelta(milliseconds=5))
    assert len(lines) == 1
    assert '"path": "/api/v1/compliance/subject-access"' in lines[0]
    assert "token" not in lines[0] and "ab" * 64 not in lines[0]
    assert '"request_id": "abc"' in lines[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_it_ships_systemd_units_that_systemd_accepts(tmp_path):
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/registry", str(ROOT))
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_it_runs_exactly_one_beat_and_hands_secrets_over_as_files():
    units = {p.stem: p.read_text() for p in (DEPLOY / "systemd").glob("*.service")}
    units.pop("registry-custodian")  # another operator's machine: tests/test_custodian_deploy.py
    assert set(units) == {"registry-web", "registry-worker", "registry-beat", "registry-migrate"}
    for name, text in units.items():
        assert "EnvironmentFile=/etc/registry/registry.env" in text
        for secret in (
            "DJANGO_SECRET_KEY",
            "REGISTRY_PEPPER",
            "REGISTRY_AUDIT_SEAL_KEY",
            "REGISTRY_AUDIT_SIGNING_SEED",
        ):
            assert re.search(rf"^Environment={secret}_FILE=%d/", text, flags=re.MULTILINE)
        assert "LoadCredential=" in text
        # Only the migrations run as the schema's owner.
        assert ("postgres_owner_password" in text) == (name == "registry-migrate"), name
    for role in ("web", "worker", "beat"):
        text = units[f"registry-{role}"]
        assert re.search(r"^Environment=REDIS_PASSWORD_FILE=%d/", text, flags=re.MULTILINE)
        # The OPRF seed goes to the web process only; worker and beat are not even given it.
        assert re.search(rf"^Environment=REGISTRY_PROCESS={role}$", text, flags=re.MULTILINE)
        gets_seed = re.search(r"^[^#].*(registry_oprf_seed|REGISTRY_OPRF_SEED)", text, re.M)
        assert bool(gets_seed) == (role == "web"), role
    assert "REGISTRY_AUDIT_CHECKPOINT_DIR=" in units["registry-worker"]
    assert "deploy/gunicorn.conf.py" in units["registry-web"]
    assert "DatabaseScheduler" in units["registry-beat"]
    assert "beat" not in re.search(r"^ExecStart=.*$", units["registry-worker"], re.M).group(0)


def test_it_ships_a_compose_file_with_every_role():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    assert services["beat"]["deploy"]["replicas"] == 1
    declared = set(compose["secrets"])
    for name, service in services.items():
        assert set(service.get("secrets", [])) <= declared, name
        for key, value in (service.get("environment") or {}).items():
            assert not key.endswith(("SECRET_KEY", "PEPPER", "SEED", "PASSWORD")), key
            assert "@" not in str(value) or ":" not in str(value).split("@")[0].split("//")[-1]
    assert "deploy/gunicorn.conf.py" in " ".join(services["web"]["command"])
    # Redis asks for a password, which every registry process has (as a secret file).
    assert "requirepass" in " ".join(services["redis"]["command"])
    for name in ("web", "worker", "beat", "migrate"):
        assert services[name]["environment"]["REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
        assert "redis_password" in services[name]["secrets"]
    # Only the web role is given the OPRF seed.
    assert "registry_oprf_seed" in services["web"]["secrets"]
    for name in ("worker", "beat"):
        assert "registry_oprf_seed" not in services[name]["secrets"]
        assert services[name]["environment"]["REGISTRY_PROCESS"] == name


def test_it_runs_the_app_as_the_runtime_role_and_only_migrate_as_the_owner():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_USER"] == "postgres"
    assert any("roles.sql" in v or "/registry-postgres" in v for v in postgres["volumes"])
    for name in ("web", "worker", "beat", "migrate"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://registry_app@"), name
        assert environment["REGISTRY_AUDIT_SEAL_KEY_FILE"].startswith("/run/secrets/")
        owner = name == "migrate"
        assert ("DATABASE_OWNER_URL" in environment) == owner, name
        assert ("postgres_owner_password" in services[name]["secrets"]) == owner, name
        assert "postgres_superuser_password" not in services[name]["secrets"], name
    assert services["migrate"]["environment"]["DATABASE_OWNER_URL"].startswith(
        "postgres://registry_owner@"
    )
    init = (DEPLOY / "postgres" / "init-roles.sh").read_text()
    assert "roles.sql" in init and "ALTER ROLE registry_app PASSWORD" in init


def test_it_limits_bodies_in_nginx_as_in_the_settings():
    site = (DEPLOY / "nginx" / "registry.conf").read_text()
    limit_mib = int(re.search(r"client_max_body_size (\d+)m;", site).group(1))
    assert limit_mib * 1024 * 1024 == django_settings.REGISTRY_MAX_BODY_BYTES
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in site
    proxy = (DEPLOY / "nginx" / "registry_proxy.conf").read_text()
    assert "X-Forwarded-Proto $scheme" in proxy
    assert "$request_uri" not in re.search(r"log_format.*?;", site, flags=re.S).group(0)


def nginx_blocks(text: str) -> list:
    """The site's directives as nested lists: [name, args, children or None] (enough of
    nginx's grammar for our own file: no quoted braces)."""
    text = re.sub(r"#[^\n]*", "", text)
    tokens = re.findall(r"[{};]|[^\s{};]+", text)
    stack: list[list] = [[]]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].append([words[0], words[1:], None])
            words = []
        elif token == "{":
            block = [words[0], words[1:], []]
            stack[-1].append(block)
            stack.append(block[2])
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token)
    return stack[0]


def nginx_location_for(server: list, uri: str) -> list:
    """The location nginx picks for `uri` (exact match, else the longest prefix; the site
    has no regex locations)."""
    locations = [d for d in server if d[0] == "location"]
    assert all(d[1][0] in ("=", "/") or d[1][0].startswith("/") for d in locations)
    exact = [d for d in locations if d[1][0] == "=" and d[1][1] == uri]
    if exact:
        return exact[0][2]
    prefixes = [d for d in locations if d[1][0] != "=" and uri.startswith(d[1][0])]
    return max(prefixes, key=lambda d: len(d[1][0]))[2]


def test_it_does_not_serve_readyz_to_the_internet_through_nginx():
    """/readyz tells whoever asks which dependency is down: nginx answers it with a 404 on
    every server of the site, plain HTTP or TLS, and proxies /healthz only."""
    servers = [
        d[2]
        for d in nginx_blocks((DEPLOY / "nginx" / "registry.conf").read_text())
        if d[0] == "server"
    ]
    assert len(servers) == 2
    for server in servers:
        readyz = nginx_location_for(server, "/readyz")
        assert not any(d[0] == "proxy_pass" for d in readyz), readyz
        assert ["return", ["404"], None] in readyz
    tls = next(s for s in servers if any(d[0] == "ssl_certificate" for d in s))
    assert any(d[0] == "proxy_pass" for d in nginx_location_for(tls, "/api/v1/lookups"))


def test_it_defaults_smtp_to_tls_in_production(tmp_path):
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EMAIL_USE_TLS)"
    )
    env = production_env(tmp_path, DJANGO_SETTINGS_MODULE="consortium.settings")
    env.pop("EMAIL_USE_TLS", None)
    production = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert production.stdout.strip().splitlines()[-1] == "True"
    plain = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**env, "EMAIL_USE_TLS": "false"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert plain.stdout.strip().splitlines()[-1] == "False"


def test_it_adds_a_replica_and_its_router_only_when_configured(tmp_path):
    probe = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([sorted(s.DATABASES), s.DATABASE_ROUTERS, "
        "s.DATABASES.get('replica', {}).get('HOST')]))"
    )
    env = {**os.environ, "REGISTRY_ENV": "test", "DJANGO_SETTINGS_MODULE": "consortium.settings"}
    env.pop("DATABASE_REPLICA_URL", None)
    without = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert without.stdout.strip().splitlines()[-1] == '[["default"], [], null]'
    env["DATABASE_REPLICA_URL"] = "postgres://registry@10.9.8.7:5432/registry"
    with_replica = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert with_replica.stdout.strip().splitlines()[-1] == (
        '[["default", "replica"], ["registry.db_router.PrimaryReplicaRouter"], "10.9.8.7"]'
    )


@pytest.fixture
def replica_configured(monkeypatch):
    # As if DATABASE_REPLICA_URL were set (the settings side is the subprocess test above).
    monkeypatch.setattr(db_router, "replica_configured", lambda: True)


@pytest.mark.django_db(transaction=True)
def test_it_reads_lookup_data_from_the_replica_outside_transactions(replica_configured):
    router = PrimaryReplicaRouter()
    for model in (Case, CaseIdentifier, Sighting):
        assert router.db_for_read(model) == "replica"
    for model in (ApiKey, AuditEvent, Lookup):
        assert router.db_for_read(model) == "default"


@pytest.mark.django_db(transaction=True)
def test_it_keeps_reads_inside_a_transaction_and_all_writes_on_the_primary(replica_configured):
    router = PrimaryReplicaRouter()
    with transaction.atomic():
        assert router.db_for_read(Case) == "default"
    for model in (Case, CaseIdentifier, Sighting, AuditEvent):
        assert router.db_for_write(model) == "default"
    assert router.allow_migrate("replica", "registry") is False
    assert router.allow_migrate("default", "registry") is True


@pytest.mark.django_db(transaction=True)
def test_it_reads_everything_from_the_primary_without_a_replica():
    assert PrimaryReplicaRouter().db_for_read(Case) == "default"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium package")
def test_it_runs_the_login_page_and_the_api_docs_under_the_csp_in_a_browser(
    live_server, monkeypatch
):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page()
            page.on(
                "console",
                lambda m: (
                    violations.append(m.text) if "Content Security Policy" in m.text else None
                ),
            )
            page.goto(f"{live_server.url}/admin/login/")
            page.wait_for_selector("input[name=username]")
            page.goto(f"{live_server.url}/api/v1/docs/")
            # Swagger UI is built by its scripts: it renders only if the CSP let them run.
            page.wait_for_selector('[data-path="/api/v1/lookups"]', timeout=20_000)
        finally:
            browser.close()
    assert violations == []


BROKER_DECLARE = """
import sys
import django
django.setup()
from kombu import Exchange, Queue
from consortium.celery import app
name = sys.argv[1]
with app.connection_for_write() as connection:
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    queue(connection.default_channel).declare()
"""


def test_it_keeps_the_filesystem_brokers_exchange_tables_under_var(tmp_path):
    # kombu's filesystem transport writes one table per exchange into its control folder,
    # "control" in the working directory unless configured: run from elsewhere to see it.
    name = f"test-control-{os.getpid()}"
    for folder in ("broker", "broker-done"):  # as scripts/dev_secrets.py makes them
        (ROOT / "var" / folder).mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        REGISTRY_ENV="test",
        CELERY_BROKER_URL="filesystem://",
        DJANGO_SETTINGS_MODULE="consortium.settings",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    table = ROOT / "var" / "broker-control" / f"{name}.exchange"
    try:
        result = subprocess.run(
            [sys.executable, "-c", BROKER_DECLARE, name],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert table.exists()
        assert list(tmp_path.iterdir()) == []
    finally:
        table.unlink(missing_ok=True)
