"""The key ceremony: split the consortium's OPRF key among custodians.

    manage.py oprf_keygen --threshold 2 --custodians 3 --out DIR [--seed-file F] [--url U ...]

Derives skS (RFC 9497 DeriveKeyPair, mode VOPRF, info REGISTRY_OPRF_KEY_INFO) from a new seed,
or from --seed-file to move a single-key deployment to custodians without changing a token;
splits it t-of-n with Shamir's scheme; writes one share file per custodian (a secret: hand each
to its custodian and to no one else) and public_keys.json (public: the registry and every
custodian serve it as REGISTRY_OPRF_KEYS_FILE). skS itself and a new seed are never written:
after the ceremony nobody holds the whole key.
"""

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from registry_client import oprf
from registry_client.evaluators import MODE, SUITE


class Command(BaseCommand):
    help = "Split the OPRF key t-of-n among custodians: share files and public_keys.json."

    def add_arguments(self, parser):
        parser.add_argument("--threshold", type=int, required=True, metavar="T")
        parser.add_argument("--custodians", type=int, required=True, metavar="N")
        parser.add_argument("--out", type=Path, required=True, metavar="DIR")
        parser.add_argument(
            "--seed-file", type=Path, help="existing 32-byte hex seed (keeps today's tokens)"
        )
        parser.add_argument(
            "--url",
            action="append",
            default=[],
            help="base URL of custodian 1, 2, ... in order (may be filled in later)",
        )

    def handle(self, *args, threshold, custodians, out, seed_file, url, **options):
        if not 1 <= threshold <= custodians <= 255:
            raise CommandError("Need 1 <= threshold <= custodians <= 255.")
        if url and len(url) != custodians:
            raise CommandError("Give one --url per custodian, or none.")
        sk, pk = oprf.derive_key_pair(
            self._seed(seed_file), settings.REGISTRY_OPRF_KEY_INFO.encode(), oprf.VOPRF
        )
        key_id = oprf.key_id(pk)
        out.mkdir(parents=True, exist_ok=True)
        evaluators = []
        for index, share in oprf.split_key(sk, threshold, custodians):
            name = f"custodian-{index}"
            public = oprf.public_share(share).hex()
            _write_secret(
                out / f"{name}.share.json",
                {
                    "suite": SUITE,
                    "mode": MODE,
                    "key_id": key_id,
                    "id": name,
                    "index": index,
                    "threshold": threshold,
                    "share": share.hex(),
                    "public_share": public,
                },
            )
            evaluators.append(
                {
                    "id": name,
                    "index": index,
                    "url": url[index - 1] if url else "",
                    "public_key": public,
                }
            )
        document = {
            "suite": SUITE,
            "mode": MODE,
            "key_id": key_id,
            "public_key": pk.hex(),
            "threshold": threshold,
            "evaluators": evaluators,
        }
        (out / "public_keys.json").write_text(json.dumps(document, indent=2) + "\n")
        self.stderr.write(f"{custodians} share files and public_keys.json written to {out}.")
        self.stdout.write(key_id)

    def _seed(self, seed_file: Path | None) -> bytes:
        if seed_file is None:
            return secrets.token_bytes(32)  # lives in this process only, never written
        try:
            seed = bytes.fromhex(seed_file.read_text().strip())
        except (OSError, ValueError):
            raise CommandError("--seed-file must hold 64 hex characters.") from None
        if len(seed) != 32:
            raise CommandError("--seed-file must hold 64 hex characters.")
        return seed


def _write_secret(path: Path, content: dict) -> None:
    """Created with mode 0600 from the start: a share is never readable by others."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(content, indent=2) + "\n")
