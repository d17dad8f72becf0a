"""The ``siptwin`` command: up, down, regions, hosts, ca, run, explain, mark, verify, settings."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import IMPORTED_AT, __version__
from .cloud.scope import DEFAULT_REGION as HOME_REGION
from .limits import DESCRIPTIONS as LIMIT_DESCRIPTIONS
from .limits import Limits, parse_limit_options
from .model.state_dir import API_FILE, DATABASE_FILE, LOG_FILE, PID_FILE
from .regions.catalogue import (
    Catalogue,
    CatalogueError,
    default_catalogue_dir,
    is_loopback,
    parse_region_addresses,
)
from .runtime import run_event_loop, settle_for_serving, until_terminated
from .settings import SETTINGS, SettingsError, load_fidelity
from .twin.launch import BACKENDS

if TYPE_CHECKING:
    from .twin.config import Twin

# The interpreter starts in well under this; a longer gap between fork and import means the
# process ran something else before it exec'd Python.
EXEC_AFTER_FORK_SECONDS = 2.0
DEFAULT_STATE = Path(os.environ.get("SIPTWIN_STATE", ".siptwin"))
READY_LINE = "siptwin ready"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    verbosity = int(getattr(args, "verbose", 0) or 0)
    logging.basicConfig(level=(logging.DEBUG if verbosity >= 2 else
                               logging.INFO if verbosity == 1 else logging.WARNING),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return args.run(args)
    except (CatalogueError, SettingsError) as err:
        print(f"siptwin: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siptwin", description="An offline twin of Twilio's SIP Domain service.")
    parser.add_argument("--version", action="version", version=f"siptwin {__version__}")
    sub = parser.add_subparsers(dest="command")

    up = sub.add_parser("up", help="start the control plane, every region node and DNS")
    up.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state directory (default .siptwin)")
    up.add_argument("--listen", metavar="ADDR",
                    help="serve every region on this one address (UDP/TCP 5060, TLS 5061); "
                         "the Request-URI host selects the region (Twilio selects it by the "
                         "address reached: this is a convenience)")
    up.add_argument("--region-address", metavar="REGION=ADDR", action="append", default=[],
                    help="bind one region to ADDR, any local address (repeatable), "
                         "e.g. ie1=192.0.2.3")
    up.add_argument("--api-host", default="127.0.0.1", help="REST API address (default 127.0.0.1)")
    up.add_argument("--api-port", type=int, default=8765, help="REST API port (default 8765)")
    up.add_argument("--dns-host", default="127.0.0.1", help="DNS address (default 127.0.0.1)")
    up.add_argument("--dns-port", type=int, default=5300,
                    help="DNS port (default 5300; 53 lets devices use it as their resolver)")
    up.add_argument("--settings", type=Path, help="YAML file of fidelity settings")
    up.add_argument("--profile", choices=("seed", "observed"), help="fidelity profile")
    up.add_argument("--regions", help="comma-separated subset of regions (default: all)")
    up.add_argument("--caller-location", help="add each edge's round-trip time as seen from "
                    "this city (regions/profiles/caller-rtt.yaml), e.g. london")
    up.add_argument("--backend", choices=BACKENDS, default="embedded",
                    help="embedded (default: one process), process (control plane and each "
                         "region in its own process), netns (each region in a network "
                         "namespace; root), docker (each region a container; root)")
    up.add_argument("--workers", type=int, default=1,
                    help="processes serving the SIP addresses (default 1; more use more cores "
                         "for load tests)")
    up.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                    help="change a resource limit (repeatable; 'siptwin limits' lists them)")
    up.add_argument("--token-file", type=Path, help="also write the auth token to this file "
                    "(mode 0600); the token is never written to a log")
    up.add_argument("--detach", action="store_true", help="return once ready; stop with 'siptwin down'")
    up.add_argument("-v", "--verbose", action="count", default=0,
                    help="log every SIP message in and out: one line each (-v), full text (-vv)")
    up.set_defaults(run=cmd_up)

    down = sub.add_parser("down", help="stop a twin started with 'up --detach'")
    down.add_argument("--state", type=Path, default=DEFAULT_STATE)
    down.set_defaults(run=cmd_down)

    regions = sub.add_parser("regions", help="list the regions, their addresses and host names")
    regions.add_argument("--json", action="store_true")
    regions.set_defaults(run=cmd_regions)

    hosts = sub.add_parser("hosts", help="print /etc/hosts lines for a PBX that cannot use our DNS")
    hosts.add_argument("domain", nargs="?", help="domain label or name (default: every domain)")
    hosts.add_argument("--state", type=Path, default=DEFAULT_STATE)
    hosts.set_defaults(run=cmd_hosts)

    ca = sub.add_parser("ca", help="print the path of the certificate authority devices must "
                        "trust for TLS")
    ca.add_argument("--state", type=Path, default=DEFAULT_STATE)
    ca.add_argument("--pem", action="store_true", help="print the authority's certificate (PEM)")
    ca.set_defaults(run=cmd_ca)

    run = sub.add_parser("run", help="run the conformance scenarios with a progress bar and a summary")
    run.add_argument("paths", nargs="*",
                     help="scenario files or folders (default: ./scenarios, else the packaged ones)")
    run.add_argument("-n", "--workers", default="auto", help="parallel workers (default auto)")
    run.add_argument("--report", default="reports/conformance.html", help="HTML report file")
    run.add_argument("--regions", help="only these regions (comma-separated)")
    run.add_argument("--profile", choices=("seed", "observed"), help="fidelity profile")
    run.add_argument("--settings", help="YAML file of fidelity settings")
    run.add_argument("-k", dest="keyword", help="only scenarios matching this pytest -k expression")
    run.set_defaults(run=cmd_run)

    explain = sub.add_parser("explain", help="explain a call of a running twin: findings and fixes")
    explain.add_argument("call", nargs="?", help="CallSid (CA...) or SIP Call-ID")
    explain.add_argument("--last", action="store_true", help="the most recent call or REGISTER")
    explain.add_argument("--state", type=Path, default=DEFAULT_STATE)
    explain.add_argument("--api", help="REST API URL (default: the one 'siptwin up' recorded)")
    explain.add_argument("--json", action="store_true", help="print the findings as JSON")
    explain.set_defaults(run=cmd_explain)

    mark = sub.add_parser("mark", help="remember this moment: 'siptwin verify --since' judges "
                          "only the calls after it")
    mark.add_argument("name", nargs="?", help="a name for the mark (default: the time)")
    mark.add_argument("--state", type=Path, default=DEFAULT_STATE)
    mark.set_defaults(run=cmd_mark)

    verify = sub.add_parser("verify", help="judge the calls a running twin recorded against "
                            "an expectation file; exit 1 when one fails")
    verify.add_argument("expectations", type=Path, help="YAML file: calls: [{match, count, expect}]")
    verify.add_argument("--since", help="a mark ('siptwin mark') or seconds since the epoch "
                        "(default: since the twin started)")
    verify.add_argument("--junit", type=Path, help="write a JUnit XML file")
    verify.add_argument("--report", type=Path, help="write the HTML report (ladders, messages, "
                        "findings)")
    verify.add_argument("--state", type=Path, default=DEFAULT_STATE)
    verify.add_argument("--api", help="REST API URL (default: the one 'siptwin up' recorded)")
    verify.set_defaults(run=cmd_verify)

    settings = sub.add_parser("settings", help="list every fidelity setting, both profiles and why")
    settings.set_defaults(run=cmd_settings)

    limits = sub.add_parser("limits", help="list every resource limit, its default and meaning")
    limits.set_defaults(run=cmd_limits)
    return parser


# ---------------------------------------------------------------------------- up / down


def cmd_up(args: argparse.Namespace) -> int:
    if args.detach:
        return _detach(args)
    return run_event_loop(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    from .twin.config import TwinConfig
    from .twin.launch import make_twin

    _secure_state(args.state)
    fidelity = load_fidelity(args.settings, args.profile)
    catalogue = Catalogue.load(default_catalogue_dir())
    catalogue = catalogue.select_listed(args.regions).placed(
        args.listen, parse_region_addresses(args.region_address))
    beyond = not (is_loopback(args.api_host) and is_loopback(args.dns_host))
    if (args.listen or args.region_address or beyond) and args.backend != "embedded":
        print("siptwin: --listen, --region-address and --api-host/--dns-host beyond loopback "
              "apply to the embedded backend", file=sys.stderr)
        return 2
    if args.listen and args.caller_location:
        print("siptwin: --caller-location delays each region's address; with --listen every "
              "region shares one (use --region-address)", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("siptwin: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1 and args.backend != "embedded":
        print("siptwin: --workers applies to the embedded backend", file=sys.stderr)
        return 2
    if args.workers > 1 and args.caller_location:
        print("siptwin: --caller-location applies to one process; use --workers 1",
              file=sys.stderr)
        return 2
    try:
        limits = parse_limit_options(args.limit)
    except ValueError as err:
        print(f"siptwin: {err}", file=sys.stderr)
        return 2
    config = TwinConfig(state_dir=args.state, api_host=args.api_host, api_port=args.api_port,
                        dns_host=args.dns_host, dns_port=args.dns_port,
                        fidelity=fidelity, catalogue=catalogue, certificate_in_child=True,
                        certificate_follows_domains=True,
                        shared_listeners=args.workers > 1, limits=limits,
                        beyond_loopback=not is_loopback(args.api_host))
    try:
        twin, engine = make_twin(args.backend, config)
    except (OSError, RuntimeError) as err:  # netns or docker: not root, a tool missing
        print(f"siptwin: the {args.backend} backend cannot start: {err}", file=sys.stderr)
        return 1
    workers = None

    async def stop() -> None:
        if workers is not None:
            await workers.stop()
        await twin.stop()
        if engine is not None:
            engine.stop()

    try:
        if args.workers > 1:
            from .twin.embedded import EmbeddedTwin
            from .twin.workers import WorkerPool, ensure_addresses_free

            assert isinstance(twin, EmbeddedTwin)
            ensure_addresses_free(catalogue)
            await twin.start()
            workers = WorkerPool(twin, args.workers - 1, args.regions, args.profile,
                                 args.settings, args.listen, args.region_address)
            await workers.start()
        else:
            await twin.start()
    except OSError as err:
        print(f"siptwin: {err}", file=sys.stderr)
        print("siptwin: is another twin running? 'siptwin down' stops a detached one; "
              "--api-port and --dns-port choose other ports; --listen and --region-address "
              "need an address of this machine ('ip addr add ADDR/24 dev IFACE'); port 53 "
              "needs root or CAP_NET_BIND_SERVICE", file=sys.stderr)
        await stop()
        return 1
    except RuntimeError as err:  # a worker or region process did not come up
        print(f"siptwin: {err}", file=sys.stderr)
        await stop()
        return 1
    if args.caller_location:
        from .twin.locations import apply_caller_location

        latencies = apply_caller_location(twin, args.caller_location)
        print(f"caller location {args.caller_location}: one-way delay per region "
              + ", ".join(f"{r} {ms:.0f} ms" for r, ms in latencies.items()))
    # The token goes to a terminal only: a detached twin's stdout is its log file (the
    # detaching command prints the token itself), and a pipe is usually some CI log.
    _print_banner(twin, show_token=sys.stdout.isatty())
    if args.token_file is not None:
        _write_token_files(args.token_file, twin.auth_tokens)
    _warn_if_reachable(twin)
    if workers is not None:
        print(f"workers:   {args.workers} processes on the same addresses (pids "
              f"{', '.join(str(p) for p in [os.getpid(), *workers.pids])}); SO_REUSEPORT "
              "spreads callers by source address and port", flush=True)
    pid_file = args.state / PID_FILE
    # The start time lets 'siptwin down' tell this process from one that reuses its pid later.
    pid_file.write_text(f"{os.getpid()} {_process_start(os.getpid()) or ''}".strip() + "\n")
    _write_api_file(args.state, twin, {"regions": args.regions, "listen": args.listen,
                                       "region_addresses": args.region_address})
    since_start, start = _seconds_since_start()
    started_in = getattr(twin, "started_in", since_start)
    print(f"{READY_LINE} in {started_in:.3f} s ({start} to ready: {since_start:.2f} s)",
          flush=True)
    settle_for_serving()  # after the ready line: a full collection takes tens of milliseconds
    try:
        await until_terminated()
    finally:
        print("siptwin stopping", flush=True)
        await stop()
        pid_file.unlink(missing_ok=True)
    return 0


def _seconds_since_start() -> tuple[float, str]:
    """Wall time to ready and where it was counted from. Linux dates a process from its fork,
    so a shell that ran other commands before exec-ing siptwin (``scripts/bootstrap && exec
    siptwin up``) would lend us its own age: then the count starts when siptwin was imported,
    which leaves out only the interpreter's own start-up."""
    since_import = time.monotonic() - IMPORTED_AT
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return since_import, "siptwin import"
    since_fork = max(0.0, uptime - started)
    if since_fork - since_import > EXEC_AFTER_FORK_SECONDS:
        return since_import, "siptwin import"
    return since_fork, "process start"


def _secure_state(state: Path) -> None:
    """The state directory holds the auth token and HA1 hashes (SQLite), the TLS key and the
    logs: only our user may enter it, and what the twin creates there is ours alone."""
    os.umask(0o077)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state, 0o700)
    for path in state.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o600)


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def token_variable(region: str) -> str:
    """TWILIO_AUTH_TOKEN for the home region, TWILIO_AUTH_TOKEN_IE1 for ie1, ..."""
    return "TWILIO_AUTH_TOKEN" + ("" if region == HOME_REGION else f"_{region.upper()}")


def token_lines(tokens: Mapping[str, str]) -> str:
    """One ``NAME=token`` line per processing region (each has its own token, spec 2.1):
    TWILIO_AUTH_TOKEN for us1, TWILIO_AUTH_TOKEN_IE1 for ie1, ...; a shell can source them."""
    return "".join(f"{token_variable(region)}={token}\n" for region, token in tokens.items())


def _write_token_files(path: Path, tokens: Mapping[str, str]) -> None:
    """FILE holds the home region's token alone (as before); FILE.ie1, FILE.au1 the others."""
    for region, token in tokens.items():
        target = path if region == HOME_REGION else path.with_name(f"{path.name}.{region}")
        _write_private(target, token + "\n")


def _print_banner(twin: Twin, show_token: bool = True) -> None:
    fidelity = twin.fidelity
    print(f"siptwin {__version__} — fidelity profile: {fidelity.profile}")
    overrides = [f"{k}={v}" for k, v, where in fidelity.describe() if where == "override"]
    if overrides:
        print("  overrides: " + ", ".join(overrides))
    print(f"{'region':<7}{'edge':<11}{'address':<13}{'udp':>6}{'tcp':>6}{'tls':>6}  host names of {{d}}")
    for entry in twin.region_addresses():
        region = entry.region
        forms = ", ".join(form.replace("{d}", "{d}") for form in region.host_forms("{d}"))
        print(f"{region.id:<7}{region.edge:<11}{entry.host:<13}{entry.udp or '-':>6}"
              f"{entry.tcp or '-':>6}{entry.tls or '-':>6}  {forms}")
    if twin.catalogue.shared_address is not None:
        print(f"every region listens on {twin.catalogue.shared_address}: the Request-URI host "
              "selects the region (Twilio selects the edge by the address reached)")
    # One line per processing region: the SDK's base URL for it and the token it takes.
    for index, processing in enumerate(twin.auth_tokens):
        url = twin.api_url + ("" if processing == HOME_REGION else f"/{processing}")
        print(f"{'REST API:' if index == 0 else '':<11}{processing}  {url:<28}  with "
              f"{token_variable(processing)}")
    if twin.dns_address:
        host, port = twin.dns_address
        print(f"DNS:       {host}:{port}  (dig @{host} -p {port} acme.sip.ie1.twilio.com)")
    print(f"TWILIO_ACCOUNT_SID={twin.account_sid}")
    if show_token:
        print(token_lines(twin.auth_tokens), end="")
    else:
        print("TWILIO_AUTH_TOKEN (one per processing region) is not written here (not a "
              "terminal); 'siptwin up --detach' prints them, --token-file FILE keeps them")
    if twin.certificate is not None:
        from .transport.tls import authority_path

        print(f"TLS certificate: {twin.certificate} (devices trust "
              f"{authority_path(twin.certificate.parent)}: siptwin ca)")
    print(f"state: {twin.config.state_dir}", flush=True)


def _warn_if_reachable(twin: Twin) -> None:
    """Say who can reach a twin bound beyond loopback, and what they can do there."""
    sip = sorted({e.host for e in twin.region_addresses() if not is_loopback(e.host)})
    api_host = twin.config.api_host
    dns = twin.dns_address
    lines = []
    if sip:
        lines.append(f"  SIP on {', '.join(sip)}: any host that reaches these addresses can "
                     "call and REGISTER to your domains as their IP ACLs and credentials allow, "
                     "make the twin send webhooks to your voice URLs, and cause "
                     "<Dial><Sip> calls out from it")
    if not is_loopback(api_host):
        lines.append(f"  REST API on {twin.api_url} (plain HTTP): any host that reaches it "
                     "and has the auth token (shown on a terminal or by 'up --detach', kept "
                     f"in the state directory {twin.config.state_dir}) can provision the "
                     "twin - create and "
                     "delete domains, credentials and IP ACLs, read every call record; "
                     "without the token it can still try passwords")
    if dns is not None and not is_loopback(dns[0]):
        lines.append(f"  DNS on {dns[0]}:{dns[1]}: any host that reaches it learns your "
                     "domain names and edge addresses")
    if not lines:
        return
    print("WARNING: this twin is reachable beyond this machine:", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    print("  It is a test tool, not a hardened service: keep these addresses on a lab network "
          "or bridge you control (firewall them otherwise).", file=sys.stderr, flush=True)


def _detach(args: argparse.Namespace) -> int:
    _secure_state(args.state)
    log_path = args.state / LOG_FILE
    argv = [sys.executable, "-m", "siptwin", "up", "--state", str(args.state),
            "--api-host", args.api_host, "--api-port", str(args.api_port),
            "--dns-host", args.dns_host, "--dns-port", str(args.dns_port),
            "--backend", args.backend]
    for flag, value in (("--settings", args.settings), ("--profile", args.profile),
                        ("--regions", args.regions), ("--caller-location", args.caller_location),
                        ("--workers", args.workers if args.workers != 1 else None),
                        ("--listen", args.listen)):
        if value:
            argv += [flag, str(value)]
    for placement in args.region_address:
        argv += ["--region-address", placement]
    for option in args.limit:
        argv += ["--limit", option]
    if args.token_file is not None:
        argv += ["--token-file", str(args.token_file.resolve())]
    if args.verbose:
        argv.append("-" + "v" * args.verbose)
    _rotate(log_path)  # the previous run's log may be the evidence of a crash
    with log_path.open("w") as log:
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if READY_LINE in text:
            print(text, end="")
            credentials = _detached_credentials(args.state)
            if credentials is not None:
                print(token_lines(_detached_tokens(args.state, *credentials)), end="")
            print(f"detached (pid {child.pid}); stop with: siptwin down --state {args.state}")
            return 0
        if child.poll() is not None:
            print(text, end="", file=sys.stderr)
            return child.returncode or 1
        time.sleep(0.05)
    child.terminate()
    print(f"siptwin: not ready after 30 s; see {log_path}", file=sys.stderr)
    return 1


def _detached_tokens(state: Path, sid: str, home_token: str) -> dict[str, str]:
    from .cloud.store import Store

    store = Store.open(state)
    try:
        return store.auth_tokens(sid) or {HOME_REGION: home_token}
    finally:
        store.close()


def _detached_credentials(state: Path) -> tuple[str, str] | None:
    from .diagnostics.client import credentials

    return credentials(state)


LOGS_KEPT = 5


def _rotate(log_path: Path) -> None:
    """siptwin.log -> siptwin.log.1 -> ... -> siptwin.log.5 (the oldest is dropped)."""
    for index in range(LOGS_KEPT - 1, 0, -1):
        older = log_path.with_name(f"{log_path.name}.{index}")
        if older.exists():
            older.replace(log_path.with_name(f"{log_path.name}.{index + 1}"))
    if log_path.exists():
        log_path.replace(log_path.with_name(f"{log_path.name}.1"))


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _not_our_twin(pid: int, recorded_start: str | None) -> str | None:
    """Why ``pid`` is not the twin that wrote the pid file, or None when it is: the same
    start time (a pid reused after a crash has a later one) and a 'siptwin ... up' command."""
    start = _process_start(pid)
    if start is None:
        return None  # gone, or no /proc: signalling it finds out
    if recorded_start is not None and start != recorded_start:
        return f"pid {pid} now belongs to a process started after the twin"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not any(b"siptwin" in arg for arg in argv) or b"up" not in argv:
        command = b" ".join(argv).decode(errors="replace").strip()[:80]
        return f"pid {pid} is not a siptwin twin ({command})"
    return None


def cmd_down(args: argparse.Namespace) -> int:
    pid_file = args.state / PID_FILE
    if not pid_file.exists():
        print(f"siptwin: no running twin for state {args.state}", file=sys.stderr)
        return 1
    recorded = pid_file.read_text().split()
    if not recorded or not recorded[0].isdigit():
        print(f"siptwin: unreadable pid file {pid_file}", file=sys.stderr)
        return 1
    pid = int(recorded[0])
    stranger = _not_our_twin(pid, recorded[1] if len(recorded) > 1 else None)
    if stranger is not None:
        pid_file.unlink(missing_ok=True)
        print(f"siptwin: stale pid file (the twin is gone; {stranger}): removed it, "
              "signalled nothing", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        print("siptwin: the twin had already stopped")
        return 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("siptwin stopped")
            return 0
        time.sleep(0.05)
    if _not_our_twin(pid, recorded[1] if len(recorded) > 1 else None) is None:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print("siptwin killed (did not stop within 10 s)")
    return 0


# ---------------------------------------------------------------------------- information


def cmd_regions(args: argparse.Namespace) -> int:
    catalogue = Catalogue.load(default_catalogue_dir())
    rows = [
        {"id": r.id, "edge": r.edge, "location": r.location, "address": r.address,
         "udp": r.udp_port, "tcp": r.tcp_port, "tls": r.tls_port, "default": r.default,
         "host_forms": r.host_forms("{d}"),
         "impairment": {"latency_ms": r.latency_ms, "loss_percent": r.loss_percent}}
        for r in catalogue
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['id']:<5}{row['edge']:<11}{row['address']:<12}{row['location']}")
        for form in row["host_forms"]:
            print(f"       {form}")
    return 0


def cmd_hosts(args: argparse.Namespace) -> int:
    from .regions.dns import hosts_lines

    catalogue = _placed_catalogue(args.state)
    if args.domain:
        labels = [args.domain.lower().removesuffix(".sip.twilio.com")]
    else:
        labels = _existing_labels(args.state)
        if not labels:
            print("# no domains yet: create one through the API, or name one: siptwin hosts acme",
                  file=sys.stderr)
            return 1
    for line in hosts_lines(catalogue, labels):
        print(line)
    return 0


def _placed_catalogue(state: Path) -> Catalogue:
    """The catalogue on the addresses the twin of ``state`` was started with (--listen,
    --region-address), as recorded in its state directory; the shipped one otherwise."""
    catalogue = Catalogue.load(default_catalogue_dir())
    try:
        placement = json.loads((state / API_FILE).read_text()).get("placement") or {}
    except (OSError, ValueError):
        return catalogue
    return catalogue.select_listed(placement.get("regions")).placed(
        placement.get("listen"), parse_region_addresses(placement.get("region_addresses")))


def cmd_ca(args: argparse.Namespace) -> int:
    from .model.state_dir import TLS_DIR
    from .transport.tls import authority_path

    certificate = authority_path(args.state / TLS_DIR)
    if not certificate.exists():
        print(f"siptwin: no certificate in {args.state / TLS_DIR} yet: 'siptwin up --state "
              f"{args.state}' makes it", file=sys.stderr)
        return 1
    if args.pem:
        print(certificate.read_text(), end="")
    else:
        print(certificate.resolve())
    return 0


def _existing_labels(state: Path) -> list[str]:
    from .regions.dns import existing_domain_labels

    if not (state / DATABASE_FILE).exists():
        return []
    return existing_domain_labels(state)


SUITE_MODULES = {"pytest": "pytest", "xdist": "pytest-xdist", "twilio": "twilio",
                 "jsonschema": "jsonschema", "scapy": "scapy", "sipvicious": "sipvicious"}


def cmd_run(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [dist for module, dist in SUITE_MODULES.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        print(f"siptwin run: the conformance suite needs {', '.join(missing)}: "
              "pip install 'siptwin[suite]'", file=sys.stderr)
        return 2
    from .harness.progress import run_suite

    return run_suite(args)


# ---------------------------------------------------------------------------- explain

def _write_api_file(state: Path, twin: Twin, placement: dict[str, object] | None = None) -> None:
    (state / API_FILE).write_text(json.dumps({"api_url": twin.api_url,
                                              "account_sid": twin.account_sid,
                                              "placement": placement or {}}))


def cmd_explain(args: argparse.Namespace) -> int:
    from .diagnostics.client import explain_remote

    if not args.last and not args.call:
        print("siptwin: name a call (CallSid or Call-ID) or use --last", file=sys.stderr)
        return 2
    return explain_remote(args.state, "last" if args.last else args.call, args.api, args.json)


def cmd_mark(args: argparse.Namespace) -> int:
    from .harness.verify import mark

    print(mark(args.state, args.name))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .diagnostics.client import credentials
    from .harness.verify import (
        VerifyError,
        fetch_records,
        load_expectations,
        resolve_mark,
        running_api,
        summary_lines,
        verify,
        write_junit,
        write_report,
    )

    try:
        expectations = load_expectations(args.expectations)
        since = resolve_mark(args.state, args.since)
        api_url = running_api(args.state, args.api)
        creds = credentials(args.state)
        if creds is None:
            raise VerifyError("no account credentials: set TWILIO_ACCOUNT_SID and "
                              "TWILIO_AUTH_TOKEN")
        records = fetch_records(api_url, creds[0], creds[1], since)
    except VerifyError as err:
        print(f"siptwin: {err}", file=sys.stderr)
        return 2
    results = verify(expectations, records)
    for line in summary_lines(results):
        print(line)
    if args.junit:
        write_junit(results, args.junit, str(args.expectations))
        print(f"JUnit: {args.junit}")
    if args.report:
        print(f"report: {write_report(results, args.report)}")
    return 0 if all(r.outcome == "passed" for r in results) else 1


SETTING_AREAS = (("sip", "SIP edges"), ("voice", "voice webhooks and TwiML"),
                 ("rest", "REST API"))


def cmd_settings(args: argparse.Namespace) -> int:
    """Every setting, grouped by what it governs; one file sets them all (``--settings``)."""
    for area, title in SETTING_AREAS:
        print(f"# {title}")
        for s in SETTINGS:
            if s.area != area:
                continue
            print(f"{s.name}")
            choices = f"   choices: {', '.join(map(str, s.choices))}" if s.choices else ""
            print(f"    seed: {s.default!r}   observed: {s.observed!r}   (spec {s.spec}){choices}")
            print(f"    {s.why}")
        print()
    print("Set them in a YAML file for 'siptwin up --settings FILE' ({profile: ..., settings: "
          "{name: value}}), or per scenario under given.settings. docs/fidelity.md lists where "
          "the twin may differ from Twilio.")
    return 0


def cmd_limits(args: argparse.Namespace) -> int:
    """Resource limits (not fidelity: they protect the twin; docs/security.md)."""
    for name, value in Limits().as_record().items():
        print(name)
        print(f"    default: {value!r}   (siptwin up --limit {name}=...)")
        print(f"    {LIMIT_DESCRIPTIONS[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
