"""``registry-client``: tokens, bulk lookups, bulk case submission, disputes, watches and
alerts from the command line, and ``serve``, the member gateway (:mod:`registry_client.gateway`).

Configuration comes from ``--url``/``--api-key`` or the environment (``REGISTRY_URL``,
``REGISTRY_API_KEY``, or ``REGISTRY_API_KEY_FILE`` naming a file that holds the key; the
environment is preferable for the key, which would otherwise show in the process list).
Where custodians hold the consortium's key, the member has one API key at each custodian:
``REGISTRY_CUSTODIAN_KEYS="custodian-1=KEY1,custodian-2=KEY2,..."``, or a JSON file
``{"custodian-1": "KEY1", ...}`` named by ``--custodian-keys`` or
``REGISTRY_CUSTODIAN_KEYS_FILE`` (keep it mode 0600). The evaluators themselves, their
addresses and public keys come from the registry's published key document.

Exit codes: 0 all rows done, 1 some rows invalid or failed, 2 usage or
configuration error (including a refused API key).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from . import __version__
from .bulk import (
    ColumnSpec,
    FatalJobError,
    LookupJob,
    ResultWriter,
    SubmitJob,
    TokenCache,
    read_rows,
    resolve_columns,
)
from .canonical import KINDS, CanonicalizationError, canonicalize
from .client import Client, is_token
from .errors import AuthenticationError, PermissionDeniedError, RegistryError
from .monitor import AlertFollower, WatchJob
from .progress import Progress, count_data_rows

__all__ = ["main"]

EXIT_OK, EXIT_ROWS_FAILED, EXIT_USAGE = 0, 1, 2
PURPOSES = ("loan_application", "account_opening", "credit_review", "fraud_investigation")
REASONS = ("not_me", "identity_stolen", "inaccurate", "resolved", "other")
WATCH_PURPOSES = ("loan_monitoring", "account_monitoring")


class UsageError(Exception):
    """Bad arguments or configuration: exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"registry-client: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "\nregistry-client: interrupted; re-running the same command is safe", file=sys.stderr
        )
        return EXIT_ROWS_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="registry-client",
        description="Member-side client of the consortium fraud registry. Raw identifiers "
        "never leave this machine: only blinded elements and tokens are sent.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--url", help="registry base URL (default: $REGISTRY_URL)")
    parser.add_argument("--api-key", help="API key (default: $REGISTRY_API_KEY, preferred)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument(
        "--max-retries",
        type=int,
        help="retries on 429/503/network (default 5; `serve`: 1, and never after Retry-After)",
    )
    parser.add_argument("--key-id", help="expected OPRF key id; refuse any other")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (it shows only on a terminal)"
    )
    parser.add_argument(
        "--custodian-keys",
        metavar="FILE",
        help="JSON file of this member's API key at each custodian "
        "(default: $REGISTRY_CUSTODIAN_KEYS_FILE or $REGISTRY_CUSTODIAN_KEYS)",
    )
    parser.add_argument(
        "--allow-http", action="store_true", help="allow plain http to a non-local registry"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_token_command(commands)
    _add_lookup_command(commands)
    _add_submit_command(commands)
    _add_dispute_command(commands)
    _add_serve_command(commands)

    _add_watch_command(commands)
    _add_alerts_command(commands)
    return parser


def _add_token_command(commands: argparse._SubParsersAction) -> None:
    token = commands.add_parser("token", help="print the token of identifiers, one per line")
    token.add_argument("--kind", required=True, choices=KINDS)
    token.add_argument(
        "values", nargs="*", metavar="VALUE", help="values; none or '-' reads lines from stdin"
    )
    token.set_defaults(handler=run_token)


def _add_lookup_command(commands: argparse._SubParsersAction) -> None:
    lookup = commands.add_parser("lookup", help="look up every row of a CSV file")
    lookup.add_argument("file", type=Path, help="CSV file with a header row")
    lookup.add_argument("--purpose", required=True, choices=PURPOSES)
    _add_csv_options(lookup)
    lookup.add_argument(
        "--output",
        help="result file, '-' for stdout "
        "(default: <input stem>.results.csv or .results.jsonl beside the input)",
    )
    lookup.add_argument("--jsonl", action="store_true", help="write JSON lines instead of CSV")
    consent = lookup.add_mutually_exclusive_group()
    consent.add_argument("--consent-column", metavar="HEADER", help="per-row consent reference")
    consent.add_argument("--consent-reference", metavar="REF", help="one consent reference")
    lookup.add_argument(
        "--velocity-threshold",
        type=int,
        default=2,
        help="24h velocity counted as an alert in the summary (default 2)",
    )
    lookup.set_defaults(handler=run_lookup)


def _add_submit_command(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser(
        "submit", help="report confirmed cases from a CSV (reference,category,confirmed_at,...)"
    )
    submit.add_argument("file", type=Path, help="CSV file with a header row")
    submit.add_argument(
        "--attest",
        action="store_true",
        help="state that every case meets the consortium's standard of proof (required)",
    )
    _add_csv_options(submit)
    submit.set_defaults(handler=run_submit)


def _add_dispute_command(commands: argparse._SubParsersAction) -> None:
    dispute = commands.add_parser(
        "dispute",
        help="file a data subject's dispute about a case; the subject's identifier (one of the "
        "case's) is read from stdin, so that it never shows in the process list",
    )
    dispute.add_argument("case_id", metavar="CASE_ID", help="the case id from a lookup result")
    dispute.add_argument("--kind", required=True, choices=KINDS, help="kind of the identifier")
    dispute.add_argument("--reason", required=True, choices=REASONS)
    dispute.add_argument("--statement", default="", help="the subject's statement (no raw data)")
    dispute.add_argument(
        "--token", action="store_true", help="stdin holds the identifier's token, not its value"
    )
    dispute.set_defaults(handler=run_dispute)


def _add_serve_command(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the member gateway: plain JSON with raw identifiers over HTTP, for systems "
        "in any language (see the README's Gateway section)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    serve.add_argument("--port", type=int, default=8088, help="port (default 8088)")
    serve.add_argument(
        "--secret-file",
        metavar="FILE",
        help="file holding the callers' shared secret (default: $REGISTRY_GATEWAY_SECRET_FILE "
        "or $REGISTRY_GATEWAY_SECRET); required unless --host is loopback or mTLS is on",
    )
    serve.add_argument("--cache-size", type=int, default=100_000, help="tokens kept (LRU)")
    serve.add_argument(
        "--cache-ttl", type=float, default=3600.0, help="seconds a cached token is used"
    )
    serve.add_argument(
        "--max-concurrency", type=int, default=32, help="requests at the registry at once"
    )
    serve.add_argument(
        "--max-body", type=int, default=4 * 1024 * 1024, help="largest request body, bytes"
    )
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    serve.add_argument("--tls-key", metavar="FILE", help="the certificate's private key")
    serve.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="require client certificates signed by this CA (mTLS; then no secret is needed)",
    )
    serve.set_defaults(handler=run_serve)


def _add_watch_command(commands: argparse._SubParsersAction) -> None:
    watch = commands.add_parser(
        "watch", help="watch the identifiers of every row (one loan per row) of a CSV file"
    )
    watch.add_argument("file", type=Path, help="CSV file with a header row")
    watch.add_argument("--purpose", required=True, choices=WATCH_PURPOSES)
    _add_csv_options(watch)
    watch.add_argument("--label-column", metavar="HEADER", help="your own label (loan number)")
    consent = watch.add_mutually_exclusive_group(required=True)
    consent.add_argument("--consent-column", metavar="HEADER", help="per-row consent reference")
    consent.add_argument("--consent-reference", metavar="REF", help="one consent reference")
    watch.add_argument(
        "--expires-on", metavar="YYYY-MM-DD", help="end of the watch (default 180 days, max 366)"
    )
    watch.set_defaults(handler=run_watch)


def _add_alerts_command(commands: argparse._SubParsersAction) -> None:
    alerts = commands.add_parser(
        "alerts", help="print new alerts, one line each, resuming from the last cursor seen"
    )
    alerts.add_argument(
        "--follow", action="store_true", help="keep polling for new alerts until interrupted"
    )
    alerts.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    alerts.add_argument(
        "--state-file",
        type=Path,
        default=Path(".registry-alerts-cursor"),
        help="where the last cursor seen is kept (default ./.registry-alerts-cursor)",
    )
    alerts.set_defaults(handler=run_alerts)


def _add_csv_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="KIND=HEADER",
        help="identifier column (repeatable); default: headers named exactly like kinds "
        f"({', '.join(KINDS)})",
    )
    command.add_argument("--encoding", default="utf-8-sig", help="input encoding (e.g. gb18030)")
    command.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    command.add_argument(
        "--cache-size", type=int, default=50_000, help="tokens kept in memory (LRU)"
    )


# -------------------------------------------------------------------------------------------
# Commands
# -------------------------------------------------------------------------------------------


def run_token(args: argparse.Namespace) -> int:
    values = args.values if args.values and args.values != ["-"] else _stdin_values()
    canonical: list[tuple[str, str]] = []
    failed = False
    for number, value in enumerate(values, start=1):
        try:
            canonical.append((args.kind, canonicalize(args.kind, value)))
        except CanonicalizationError as error:
            print(f"value {number}: {error.code}", file=sys.stderr)
            failed = True
    if failed:
        return EXIT_ROWS_FAILED
    client = _client_from(args)
    try:
        tokens = client.tokenize_canonical(canonical)
    except RegistryError as error:
        return _registry_exit(error)
    for token in tokens:
        print(token)
    return EXIT_OK


def run_lookup(args: argparse.Namespace) -> int:
    client = _client_from(args)
    progress = _progress(args)
    with _open_input(args) as stream:
        header, rows = read_rows(stream, args.delimiter)
        columns = _columns(header, args.column)
        consent_index = _header_index(header, args.consent_column)
        output_path = _output_path(args)
        with _open_output(output_path) as output:
            job = LookupJob(
                client=client,
                cache=TokenCache(client, args.cache_size),
                purpose=args.purpose,
                columns=columns,
                writer=ResultWriter(output, columns, args.jsonl),
                report=sys.stderr,
                consent_index=consent_index,
                consent_reference=args.consent_reference,
                velocity_threshold=args.velocity_threshold,
                progress=progress,
            )
            fatal = _run_job(job.run, rows)
    _end_progress(progress)
    summary = job.summary
    out = sys.stderr if output_path is None else sys.stdout
    print(
        f"rows: {summary.rows}, invalid rows: {summary.invalid_rows}, "
        f"matched rows: {summary.matched_rows}, velocity alerts: {summary.velocity_alerts}, "
        f"results: {output_path or 'stdout'}",
        file=out,
    )
    return _job_exit(fatal, summary.invalid_rows)


def run_submit(args: argparse.Namespace) -> int:
    if not args.attest:
        raise UsageError(
            "--attest is required: it states that every case in the file is confirmed fraud "
            "with evidence on file (the consortium's standard of proof)"
        )
    client = _client_from(args)
    progress = _progress(args)
    with _open_input(args) as stream:
        header, rows = read_rows(stream, args.delimiter)
        job = SubmitJob(
            client=client,
            cache=TokenCache(client, args.cache_size),
            columns=_columns(header, args.column),
            reference_index=_required_index(header, "reference"),
            category_index=_required_index(header, "category"),
            confirmed_at_index=_required_index(header, "confirmed_at"),
            report=sys.stderr,
            progress=progress,
        )
        fatal = _run_job(job.run, rows)
    _end_progress(progress)
    summary = job.summary
    print(
        f"rows: {summary.rows}, invalid rows: {summary.invalid_rows}, "
        f"created: {summary.created}, already submitted: {summary.already_submitted}, "
        f"failed: {summary.failed}"
    )
    return _job_exit(fatal, summary.invalid_rows + summary.failed)


def run_dispute(args: argparse.Namespace) -> int:
    """Print the filed dispute (id, status, due date) as one JSON object."""
    values = _stdin_values()
    if len(values) != 1:
        raise UsageError("write exactly one identifier (value or --token) on stdin")
    value = values[0].strip()
    if args.token and not is_token(value):
        print("identifier: invalid_token", file=sys.stderr)
        return EXIT_ROWS_FAILED
    if not args.token:
        try:
            canonical = canonicalize(args.kind, value)
        except CanonicalizationError as error:
            print(f"identifier: {error.code}", file=sys.stderr)
            return EXIT_ROWS_FAILED
    client = _client_from(args)
    try:
        token = value if args.token else client.tokenize_canonical([(args.kind, canonical)])[0]
        dispute = client.file_dispute(
            args.case_id, {"kind": args.kind, "token": token}, args.reason, args.statement
        )
    except RegistryError as error:
        return _registry_exit(error)
    fields = ("id", "case_id", "status", "filed_at", "due_at")
    print(json.dumps({name: dispute.get(name) for name in fields}))
    return EXIT_OK


def run_serve(args: argparse.Namespace) -> int:
    """Run the gateway until SIGTERM or Ctrl-C."""
    from . import gateway  # only the server needs http.server and ssl

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.max_retries is None:
        args.max_retries = 1
    # Retry-After is never waited for here: the caller gets the 429/503 and its Retry-After.
    client = _client_from(args, max_retry_after=0.0)
    cache = TokenCache(client, args.cache_size, ttl=args.cache_ttl)
    context = None
    if args.tls_cert or args.tls_key or args.tls_client_ca:
        if not (args.tls_cert and args.tls_key):
            raise UsageError("--tls-cert and --tls-key go together; --tls-client-ca needs both")
        try:
            context = gateway.server_ssl_context(args.tls_cert, args.tls_key, args.tls_client_ca)
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot load the TLS files: {type(error).__name__}") from None
    try:
        server = gateway.make_server(
            gateway.Gateway(client, cache),
            args.host,
            args.port,
            secret=_gateway_secret(args),
            ssl_context=context,
            max_body=args.max_body,
            max_concurrency=args.max_concurrency,
        )
    except gateway.StartupError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    log = gateway.logger
    try:
        log.info("registry key %s", client.key_document().key_id)
    except RegistryError as error:  # the registry may come up later; tokens wait for it
        log.warning("registry key not read yet: %s", error.code)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    host, port = server.server_address[:2]
    auth = "secret" if server.secret else ("mTLS" if server.require_client_cert else "none")
    log.info("listening on %s:%s (%s, auth: %s)", host, port, "https" if context else "http", auth)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    log.info("stopped")
    return EXIT_OK


def _gateway_secret(args: argparse.Namespace) -> str | None:
    path = args.secret_file or os.environ.get("REGISTRY_GATEWAY_SECRET_FILE")
    if path:
        try:
            secret = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise UsageError("cannot read the gateway secret file") from None
    else:
        secret = os.environ.get("REGISTRY_GATEWAY_SECRET", "").strip()
    return secret or None


def run_watch(args: argparse.Namespace) -> int:
    client = _client_from(args)
    with _open_input(args) as stream:
        header, rows = read_rows(stream, args.delimiter)
        job = WatchJob(
            client=client,
            cache=TokenCache(client, args.cache_size),
            purpose=args.purpose,
            columns=_columns(header, args.column),
            report=sys.stderr,
            label_index=_header_index(header, args.label_column),
            consent_index=_header_index(header, args.consent_column),
            consent_reference=args.consent_reference,
            expires_on=args.expires_on,
        )
        fatal = _run_job(job.run, rows)
    summary = job.summary
    print(
        f"rows: {summary.rows}, invalid rows: {summary.invalid_rows}, "
        f"failed rows: {summary.failed_rows}, watched identifiers: {summary.watched_identifiers}"
    )
    return _job_exit(fatal, summary.invalid_rows + summary.failed_rows)


def run_alerts(args: argparse.Namespace) -> int:
    follower = AlertFollower(
        client=_client_from(args),
        state_file=args.state_file,
        output=sys.stdout,
        interval=max(args.interval, 1.0),
    )
    fatal = _run_job(lambda _rows: follower.follow(None if args.follow else 1), None)
    return _job_exit(fatal, 0)


# -------------------------------------------------------------------------------------------
# Plumbing
# -------------------------------------------------------------------------------------------


def _client_from(args: argparse.Namespace, **options: float) -> Client:
    url = args.url or os.environ.get("REGISTRY_URL")
    api_key = args.api_key or os.environ.get("REGISTRY_API_KEY") or _api_key_from_file()
    if not url:
        raise UsageError("no registry URL: use --url or set REGISTRY_URL")
    if not api_key:
        raise UsageError(
            "no API key: set REGISTRY_API_KEY or REGISTRY_API_KEY_FILE (or use --api-key)"
        )
    try:
        return Client(
            url,
            api_key,
            timeout=args.timeout,
            max_retries=5 if args.max_retries is None else args.max_retries,
            key_id=args.key_id,
            allow_insecure_http=args.allow_http,
            custodian_keys=_custodian_keys(args),
            **options,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _api_key_from_file() -> str | None:
    """$REGISTRY_API_KEY_FILE: the key in a file (a systemd credential, a container secret)."""
    path = os.environ.get("REGISTRY_API_KEY_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        raise UsageError("cannot read the API key file ($REGISTRY_API_KEY_FILE)") from None


def _custodian_keys(args: argparse.Namespace) -> dict[str, str]:
    """evaluator id -> API key at that custodian, from a JSON file or the environment."""
    path = args.custodian_keys or os.environ.get("REGISTRY_CUSTODIAN_KEYS_FILE")
    if path:
        try:
            keys = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UsageError("cannot read the custodian keys file (JSON object expected)") from None
        if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
            raise UsageError("the custodian keys file must map custodian ids to keys")
        return keys
    keys = {}
    for item in os.environ.get("REGISTRY_CUSTODIAN_KEYS", "").split(","):
        if item.strip():
            name, separator, key = item.strip().partition("=")
            if not separator or not name or not key:
                raise UsageError("REGISTRY_CUSTODIAN_KEYS must be id=key pairs, comma-separated")
            keys[name] = key
    return keys


def _stdin_values() -> list[str]:
    return [line.rstrip("\r\n") for line in sys.stdin if line.strip()]


def _open_input(args: argparse.Namespace) -> IO[str]:
    try:
        return open(args.file, encoding=args.encoding, newline="")
    except (OSError, LookupError) as error:
        raise UsageError(f"cannot read {args.file}: {type(error).__name__}") from None


def _output_path(args: argparse.Namespace) -> Path | None:
    if args.output == "-":
        return None
    if args.output:
        return Path(args.output)
    suffix = ".results.jsonl" if args.jsonl else ".results.csv"
    return args.file.with_name(args.file.stem + suffix)


def _open_output(path: Path | None) -> IO[str]:
    if path is None:
        return _Unclosable(sys.stdout)
    try:
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as error:
        raise UsageError(f"cannot write {path}: {type(error).__name__}") from None


class _Unclosable:
    """stdout as a context manager that does not close it."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __enter__(self) -> IO[str]:
        return self._stream

    def __exit__(self, *exc: object) -> None:
        self._stream.flush()


def _columns(header: list[str], requested: list[str]) -> list[ColumnSpec]:
    pairs = []
    for text in requested:
        kind, sep, name = text.partition("=")
        if not sep or kind.strip() not in KINDS or not name.strip():
            raise UsageError(f"--column wants KIND=HEADER with KIND one of {', '.join(KINDS)}")
        pairs.append((kind.strip(), name.strip()))
    try:
        return resolve_columns(header, pairs, KINDS)
    except FatalJobError as error:
        raise UsageError(str(error)) from None


def _header_index(header: list[str], name: str | None) -> int | None:
    if name is None:
        return None
    if name not in header:
        raise UsageError(f"column not found in the header row: {name}")
    return header.index(name)


def _required_index(header: list[str], name: str) -> int:
    if name not in header:
        raise UsageError(f"required column missing from the header row: {name}")
    return header.index(name)


def _run_job(run, rows) -> FatalJobError | None:  # type: ignore[no-untyped-def]
    """Run a job; a fatal registry error ends it but still lets the summary be printed."""
    try:
        run(rows)
    except FatalJobError as error:
        return error
    except UnicodeDecodeError:
        return FatalJobError("input is not in the given --encoding", usage=True)
    return None


def _job_exit(fatal: FatalJobError | None, problems: int) -> int:
    if fatal is not None:
        print(f"registry-client: stopped: {fatal}", file=sys.stderr)
        return EXIT_USAGE if fatal.usage else EXIT_ROWS_FAILED
    return EXIT_ROWS_FAILED if problems else EXIT_OK


def _registry_exit(error: RegistryError) -> int:
    print(f"registry-client: {error}", file=sys.stderr)
    if isinstance(error, (AuthenticationError, PermissionDeniedError)):
        return EXIT_USAGE
    return EXIT_ROWS_FAILED


def _progress(args: argparse.Namespace) -> Progress | None:
    """A progress bar on a terminal, unless --quiet; nothing when output is piped or logged."""
    if args.quiet or not sys.stderr.isatty():
        return None
    return Progress(sys.stderr, count_data_rows(str(args.file), args.encoding))


def _end_progress(progress: Progress | None) -> None:
    if progress is not None:
        progress.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
