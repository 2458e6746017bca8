"""`make serve` = `python -m realtime.cli serve`: the segment service in the foreground.

Settings (environment): SEGMINT_SERVE_HOST (127.0.0.1), SEGMINT_SERVE_PORT (8700), SEGMINT_SERVE_TOKEN (required
off loopback), SEGMINT_DATA_DIR (as `make run`: data/, or the folder that follows SEGMINT_WAREHOUSE),
SEGMINT_REALTIME_RULES (overrides the bundle's rules), SEGMINT_REALTIME_FSYNC (interval | always, see
realtime/log.py), SEGMINT_SERVE_CORS_ORIGINS (comma-separated origins whose pages may call it from the browser).
Refusals are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from realtime.bundle import BundleError, bundles_dir, current_version
from realtime.log import fsync_policy, log_dir
from realtime.rules import RULES_ENV, RulesError, rules_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
EXIT_REFUSED = 2
WAREHOUSE_FILE = "warehouse.duckdb"


class Refusal(Exception):
    """The service will not start; the message is the one line shown."""


def data_dir(env: dict[str, str]) -> Path:
    """The data folder by the rule of orchestration/lib/settings.py, which this package does not import (a unit test
    pins the two together): SEGMINT_DATA_DIR, else the folder that follows SEGMINT_WAREHOUSE (`warehouse.duckdb` ->
    its folder, `<stem>.duckdb` -> `<stem>_data` beside it), else data/."""
    explicit = env.get("SEGMINT_DATA_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    warehouse_raw = env.get("SEGMINT_WAREHOUSE", "").strip()
    if not warehouse_raw:
        return (PROJECT_ROOT / "data").resolve()
    warehouse = Path(warehouse_raw).expanduser().resolve()
    return warehouse.parent if warehouse.name == WAREHOUSE_FILE else warehouse.with_name(warehouse.stem + "_data")


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def serve_settings(env: dict[str, str]) -> dict[str, object]:
    """Validated settings for `serve`, or a Refusal naming what to fix."""
    host = env.get("SEGMINT_SERVE_HOST", "").strip() or DEFAULT_HOST
    raw_port = env.get("SEGMINT_SERVE_PORT", "").strip() or str(DEFAULT_PORT)
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        raise Refusal(f"SEGMINT_SERVE_PORT={raw_port!r} is not a port number (1-65535)")
    token = env.get("SEGMINT_SERVE_TOKEN", "").strip() or None
    if not is_loopback(host) and token is None:
        raise Refusal(
            f"SEGMINT_SERVE_HOST={host} is not a loopback address and SEGMINT_SERVE_TOKEN is unset: set a token "
            "(clients then send 'Authorization: Bearer <token>') or serve on 127.0.0.1"
        )
    folder = data_dir(env)
    root = bundles_dir(folder)
    if current_version(root) is None:
        raise Refusal(f"no serving bundle in {root}: run `make run` first")
    try:
        rules_override = rules_path(env) if env.get(RULES_ENV, "").strip() else None
        fsync = fsync_policy(env)
    except (RulesError, ValueError) as failure:
        raise Refusal(str(failure)) from None
    origins = [o.strip().rstrip("/") for o in env.get("SEGMINT_SERVE_CORS_ORIGINS", "").split(",") if o.strip()]
    bad = [o for o in origins if o != "*" and not o.startswith(("http://", "https://"))]
    if bad:
        raise Refusal(f"SEGMINT_SERVE_CORS_ORIGINS: {bad[0]!r} is not an origin such as https://shop.example.com")
    return {
        "host": host,
        "port": int(raw_port),
        "token": token,
        "bundle_root": root,
        "log_dir": log_dir(folder),
        "rules_override": rules_override,
        "fsync": fsync,
        "cors_origins": origins,
    }


def serve(env: dict[str, str]) -> int:
    settings = serve_settings(env)
    import uvicorn

    from realtime.app import Service, create_app

    try:
        service = Service(
            settings["bundle_root"],
            settings["log_dir"],
            token=settings["token"],
            rules_override=settings["rules_override"],
            fsync=settings["fsync"],
        )
    except (BundleError, RulesError) as failure:
        raise Refusal(str(failure)) from None
    service.recover()
    uvicorn.run(
        create_app(service, settings["cors_origins"]),
        host=settings["host"],
        port=settings["port"],
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
        backlog=4096,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime.cli", description="segmint real-time segment service")
    parser.add_argument("command", choices=["serve"])
    parser.parse_args(argv)
    try:
        return serve(dict(os.environ))
    except Refusal as refusal:
        print(f"segmint serve: {refusal}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
