"""DogStatsD datagrams/s received without loss: the lab's emulated agent against the DogStatsD of the
`datadog-serverless-compat` binary (Datadog's Rust agent components; docs/agent_contract.md).

All receivers run side by side in one run: each step offers one rate to every receiver in
turn (rate after rate, round after round), so a machine whose load drifts meets them all alike.
A step sends a burst of one-metric datagrams (`bench.dsd.count:1|c|#step:<n>`) over loopback UDP,
bounded in count (`--max-per-step`) and time (`--step-seconds`). After a burst it waits until the
receiver stops counting, then compares: received = what the receiver says it parsed (the lab:
`packets` in its `/agent/status`; serverless-compat: the sum of its `Parsed N valid metrics` debug
log lines). The kernel's per-socket drop counter (`/proc/net/udp`) is read alongside as a witness.

Receivers: `lab` (its defaults: DD_DOGSTATSD_SO_RCVBUF, the sockets drained by a reader
process), `lab-threads` (the sockets read by the agent's own threads, as before),
`lab-rcvbuf-peer` (the lab with the socket buffer the peer uses, 208 KiB: the kernel default it
cannot change), `serverless-compat` (debug log: counted by its own log, but it writes one log line
per datagram), `serverless-compat-quiet` (info
log, no per-datagram work beyond its own: counted as sent minus the kernel's drops once its socket
backlog is empty; the debug runs validate that witness, it matches their parsed counts).

The sender (`--sender c`, the default) is `dsd_sender.c`, compiled here with the machine's C
compiler into a temporary directory: `--senders` processes, each pacing its share of the rate with
sendmmsg() batches. A one-thread Python sender (`--sender python`) tops out near the rate where the
lab starts losing, so it cannot tell a receiver's limit from its own. Every step records the rate
the senders really achieved and their CPU per datagram; before the steps, `sender_ceiling` is the
rate they reach unpaced into a socket nobody reads (the kernel drops what does not fit), so the
report can show the sender was not the limit at the rates where a receiver lost.

Usage: python bench/bench_dogstatsd.py [--rates 10000,...,200000] [--rounds 1] [--senders 2]
Writes bench/results/dogstatsd.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

from lab.world import wait_until  # noqa: E402

PEER_RCVBUF = 212992  # what serverless-compat logs: "DogStatsD using default SO_RCVBUF: 212992 bytes"
METRIC = "bench.dsd.count"


def _udp_sockets(port: int) -> list[list[str]]:
    with open("/proc/net/udp") as f:
        next(f)
        rows = (line.split() for line in f)
        return [fields for fields in rows if int(fields[1].rsplit(":", 1)[1], 16) == port]


def udp_socket_drops(port: int) -> int:
    """The kernel's drop counter of every UDP socket bound to `port` (/proc/net/udp, last column):
    datagrams that found the socket's receive buffer full. On loopback nothing else loses them."""
    try:
        return sum(int(fields[-1]) for fields in _udp_sockets(port))
    except OSError:
        return -1


def udp_socket_backlog(port: int) -> int:
    """Bytes waiting in the receive buffers of the sockets bound to `port` (rx_queue)."""
    return sum(int(fields[4].split(":")[1], 16) for fields in _udp_sockets(port))


def send_burst(port: int, rate: int, count: int, step: int) -> dict:
    """Send `count` datagrams to 127.0.0.1:`port` paced at `rate`/s; returns what was really sent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    sock.connect((peers.LOOPBACK, port))
    datagram = f"{METRIC}:1|c|#step:{step}".encode()
    batch = max(1, rate // 2000)  # pace every 0.5 ms
    send = sock.send
    sent = errors = 0
    began = time.perf_counter()
    try:
        while sent < count:
            n = min(batch, count - sent)
            for _ in range(n):
                try:
                    send(datagram)
                except OSError:
                    errors += 1
            sent += n
            ahead = began + sent / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        elapsed = time.perf_counter() - began
    finally:
        sock.close()
    return {"sent": sent - errors, "send_errors": errors, "seconds": elapsed}


SENDER_SOURCE = Path(__file__).resolve().parent / "dsd_sender.c"


class CSender:
    """`dsd_sender.c` compiled into a temporary directory (removed by `close()`), run as `senders`
    processes that each send an equal share of a burst."""

    def __init__(self, senders: int = 2, variants: int = 1) -> None:
        if senders < 1 or variants < 1:
            raise ValueError(f"--senders and --variants must be at least 1, not {senders}, {variants}")
        self.senders = senders
        self.variants = variants
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise SystemExit("bench_dogstatsd: no C compiler (cc/gcc) to build dsd_sender.c; install one or "
                             "run with --sender python (then the sender, not the receiver, may be the limit)")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-dsd-sender-"))
        self.binary = self.dir / "dsd_sender"
        build = subprocess.run([cc, "-O2", "-Wall", "-o", str(self.binary), str(SENDER_SOURCE)],
                               capture_output=True, text=True, timeout=120)
        if build.returncode != 0:
            self.close()
            raise SystemExit(f"bench_dogstatsd: {cc} could not build {SENDER_SOURCE.name}:\n{build.stderr}")

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def burst(self, port: int, rate: int, count: int, step: int) -> dict:
        """`count` datagrams to 127.0.0.1:`port` at `rate`/s (0: unpaced) from every sender process."""
        datagram = f"{METRIC}:1|c|#step:{step}"
        shares = [count // self.senders + (1 if i < count % self.senders else 0) for i in range(self.senders)]
        argv = [str(self.binary), peers.LOOPBACK, str(port), str(rate / self.senders)]
        procs = [subprocess.Popen([*argv, str(n), datagram, str(self.variants)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for n in shares if n]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"dsd_sender exited {proc.returncode}: {err.strip()}")
            results.append(json.loads(out))
        seconds = max(r["seconds"] for r in results)
        sent = sum(r["sent"] for r in results)
        return {"sent": sent, "send_errors": sum(r["send_errors"] for r in results), "seconds": seconds,
                "sender_cpu_s": sum(r["cpu_s"] for r in results)}

    def ceiling(self, count: int = 400_000) -> dict:
        """The senders' unpaced rate into a bound socket nobody reads: what they can offer at most."""
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sink.bind((peers.LOOPBACK, 0))
            burst = self.burst(sink.getsockname()[1], 0, count, 0)
        finally:
            sink.close()
        return {"senders": self.senders, "variants": self.variants, "datagrams": burst["sent"],
                "rate": round(burst["sent"] / burst["seconds"]),
                "sender_cpu_us_per_datagram": round(burst["sender_cpu_s"] * 1e6 / burst["sent"], 2)}


def settle(read: Callable[[], int], idle: float = 0.6, timeout: float = 60.0) -> int:
    """Wait until `read()` stops growing for `idle` seconds; return its last value."""
    last = read()
    changed = time.monotonic()

    def quiet() -> bool:
        nonlocal last, changed
        now = read()
        if now != last:
            last, changed = now, time.monotonic()
        return time.monotonic() - changed >= idle

    try:
        wait_until(quiet, timeout, interval=0.1, what="the receiver to stop counting")
    except TimeoutError:
        pass
    return last


RECEIVERS = ("lab", "lab-threads", "lab-rcvbuf-peer", "serverless-compat", "serverless-compat-quiet")


class Receiver:
    """What a step needs of a receiver: its port and a monotonic count of datagrams parsed."""

    def __init__(self, kind: str, intake_url: str = "") -> None:
        self.kind = kind
        self.quiet = kind == "serverless-compat-quiet"
        if kind == "serverless-compat":
            self.owner = peers.ServerlessCompat()
        elif self.quiet:
            self.owner = peers.ServerlessCompat(log_level="info")
        elif kind == "lab-rcvbuf-peer":
            # SO_RCVBUF is doubled by the kernel: ask for half of what the peer ends up with.
            self.owner = peers.LabAgent(intake_url, {"DD_DOGSTATSD_SO_RCVBUF": str(PEER_RCVBUF // 2)})
        elif kind == "lab-threads":
            # The sockets read by the agent's own threads, as before the reader process.
            self.owner = peers.LabAgent(intake_url, {"LAB_AGENT_DOGSTATSD_READER": "threads"})
        elif kind.startswith("lab@"):
            # lab@DIR: the agent as another copy of the repository has it (before/after, one run)
            self.owner = peers.LabAgent(intake_url, tree=Path(kind[4:]).resolve())
        else:
            self.owner = peers.LabAgent(intake_url)

    def __enter__(self) -> Receiver:
        self.owner.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.owner.__exit__(*exc)

    @property
    def port(self) -> int:
        return self.owner.dogstatsd_port

    def parsed(self) -> int:
        if self.quiet:
            return -udp_socket_backlog(self.port)
        if isinstance(self.owner, peers.ServerlessCompat):
            return self.owner.metrics_parsed()
        c = self.owner.dogstatsd_counts()
        # Packets still queued between the reader thread and the parser are received, not lost.
        return c["packets"] + c["queued"]

    def fully_parsed(self) -> int:
        if self.quiet:
            wait_until(lambda: udp_socket_backlog(self.port) == 0, 60, interval=0.1,
                       what="serverless-compat's socket backlog to drain")
            return 0
        if isinstance(self.owner, peers.ServerlessCompat):
            return self.owner.metrics_parsed()
        wait_until(lambda: self.owner.dogstatsd_counts()["queued"] == 0, 120, interval=0.1,
                   what="the lab's DogStatsD queue to drain")
        return self.owner.dogstatsd_counts()["packets"]

    def so_rcvbuf(self) -> int:
        if isinstance(self.owner, peers.ServerlessCompat):
            return PEER_RCVBUF
        return self.owner.dogstatsd_counts()["so_rcvbuf"]


def measure_step(rx: Receiver, send: Callable[..., dict], rate: int, args: argparse.Namespace,
                 rnd: int, step: int) -> dict:
    count = int(min(args.max_per_step, rate * args.step_seconds))
    before = rx.fully_parsed()
    drops_before = udp_socket_drops(rx.port)
    cpu_before = rx.owner.cpu_seconds()
    burst = send(rx.port, rate, count, step)
    settle(rx.parsed)
    received = rx.fully_parsed() - before
    cpu = rx.owner.cpu_seconds() - cpu_before
    drops = udp_socket_drops(rx.port) - drops_before
    if rx.quiet:
        received = burst["sent"] - drops
    lost = burst["sent"] - received
    sender_cpu = burst.get("sender_cpu_s")
    row = {
        "round": rnd,
        "receiver": rx.kind,
        "offered_rate": rate,
        "achieved_rate": round(burst["sent"] / burst["seconds"]),
        "sent": burst["sent"],
        "received": received,
        "lost": lost,
        "loss_pct": round(100.0 * lost / burst["sent"], 3) if burst["sent"] else 0.0,
        "kernel_drops": drops,
        "receiver_cpu_s": round(cpu, 2),
        "cpu_us_per_datagram": round(cpu * 1e6 / received, 1) if received > 0 else None,
        "sender_cpu_us_per_datagram": (round(sender_cpu * 1e6 / burst["sent"], 2)
                                       if sender_cpu is not None and burst["sent"] else None),
        "send_errors": burst["send_errors"],
        "so_rcvbuf": rx.so_rcvbuf(),
        "loadavg_1m": round(os.getloadavg()[0], 1),
    }
    print(f"round {rnd} {rx.kind:<23} offered {rate:>7}/s achieved {row['achieved_rate']:>7}/s "
          f"sent {row['sent']:>7} received {received:>7} loss {row['loss_pct']}% "
          f"(kernel drops {drops}) cpu {row['cpu_us_per_datagram']} us/dgram", flush=True)
    return row


def run_side_by_side(kinds: list[str], rates: list[int], args: argparse.Namespace,
                     send: Callable[..., dict]) -> list[dict]:
    """Every receiver started at once; each rate offered to each of them in turn, round after round."""
    from contextlib import ExitStack

    rows: list[dict] = []
    with ExitStack() as stack:
        receivers: list[Receiver] = []
        intakes: dict[str, peers.FakeIntake] = {}
        for kind in kinds:
            intake = None
            if kind.startswith("lab"):
                intake = peers.FakeIntake().start()
                stack.callback(intake.__exit__, None, None, None)
                intakes[kind] = intake
            receivers.append(stack.enter_context(Receiver(kind, intake.url if intake else "")))
        for rnd in range(1, args.rounds + 1):
            for i, rate in enumerate(rates):
                for rx in receivers:
                    rows.append(measure_step(rx, send, rate, args, rnd, rnd * 100 + i))
        for kind, intake in intakes.items():
            mine = [r for r in rows if r["receiver"] == kind]
            mine[-1]["intake_check"] = intake_check(intake, sum(r["received"] for r in mine))
    return rows


def intake_check(intake: peers.FakeIntake, received: int) -> dict:
    """The lab's counters summed at the intake: each flushed RATE point is count / interval."""
    client = intake.client()

    def total() -> float:
        series = client.metrics(METRIC)
        return sum(p["value"] * (s.get("interval") or 1) for s in series for p in s.get("points", []))

    try:
        wait_until(lambda: round(total()) >= received, 30, interval=0.5, what="the counters at the intake")
    except TimeoutError:
        pass
    try:
        return {"datagrams_counted_at_intake": round(total()), "received": received}
    except Exception as exc:  # noqa: BLE001 - the check is a witness, not the measurement
        return {"error": repr(exc)}


def summarise(results: list[dict]) -> dict:
    """Per receiver, from the steps of each round in rate order:

    - `clean_up_to`: the highest offered rate below which every step (that one included) lost
      nothing, per round, and its median over rounds: the headline figure;
    - `max_clean_rate`: the highest offered rate with zero loss in any round (noise shows here);
    - the loss % at every offered rate, per round.
    """
    out: dict[str, dict] = {}
    for kind in dict.fromkeys(r["receiver"] for r in results):
        rows = [r for r in results if r["receiver"] == kind]
        per_round: dict[int, int] = {}
        for rnd in sorted({r["round"] for r in rows}):
            best = 0
            for r in sorted((r for r in rows if r["round"] == rnd), key=lambda r: r["offered_rate"]):
                if r["lost"] > 0:
                    break
                best = r["offered_rate"]
            per_round[rnd] = best
        by_rate: dict[int, list[dict]] = {}
        for r in rows:
            by_rate.setdefault(r["offered_rate"], []).append(r)
        clean = [r["offered_rate"] for r in rows if r["lost"] <= 0]
        # Where it first lost, per round, with what the sender really achieved there: a loss only
        # counts against the receiver when the sender did offer (about) that rate.
        first_loss = {}
        for rnd in per_round:
            ordered = sorted((r for r in rows if r["round"] == rnd), key=lambda r: r["offered_rate"])
            lossy = [r for r in ordered if r["lost"] > 0]
            if lossy:
                first_loss[rnd] = {"offered": lossy[0]["offered_rate"], "achieved": lossy[0]["achieved_rate"],
                                   "loss_pct": lossy[0]["loss_pct"]}
        cpu = [r["cpu_us_per_datagram"] for r in rows
               if r["cpu_us_per_datagram"] is not None and r["offered_rate"] >= 20000]
        out[kind] = {
            "clean_up_to_by_round": per_round,
            "clean_up_to_median": statistics.median(per_round.values()) if per_round else None,
            "max_clean_rate": max(clean) if clean else None,
            "loss_pct_by_offered_rate": {rate: [r["loss_pct"] for r in rs] for rate, rs in by_rate.items()},
            "achieved_rate_by_offered_rate": {rate: [r["achieved_rate"] for r in rs]
                                              for rate, rs in by_rate.items()},
            "first_loss_by_round": first_loss,
            "cpu_us_per_datagram_median_from_20k": statistics.median(cpu) if cpu else None,
        }
    return out


COLUMNS = ["round", "receiver", "offered_rate", "achieved_rate", "sent", "received", "loss_pct",
           "kernel_drops", "cpu_us_per_datagram", "sender_cpu_us_per_datagram", "so_rcvbuf", "loadavg_1m"]


def print_table(results: list[dict], title: str) -> None:
    peers.print_rounds(results, title, COLUMNS, width=190)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="10000,20000,40000,60000,80000,100000,150000,200000",
                    help="offered datagrams/s per step")
    ap.add_argument("--step-seconds", type=float, default=2.0, help="burst length per step (time bound)")
    ap.add_argument("--max-per-step", type=int, default=400_000, help="datagrams per step (count bound)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole comparison (noise)")
    ap.add_argument("--receivers", default="lab,serverless-compat-quiet,serverless-compat",
                    help="comma list: lab, lab-threads, lab-rcvbuf-peer, serverless-compat, "
                         "serverless-compat-quiet, "
                         "lab@DIR (the agent of another copy of the repository, e.g. an older commit)")
    ap.add_argument("--sender", choices=("c", "python"), default="c",
                    help="c: dsd_sender.c built here (sendmmsg); python: one thread in this process")
    ap.add_argument("--senders", type=int, default=2, help="sender processes (--sender c)")
    ap.add_argument("--variants", type=int, default=1,
                    help="--sender c: cycle each datagram through K values of a tag `v:` (K contexts; no "
                         "two consecutive datagrams alike, so a receiver cannot merge repeats)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dogstatsd.json"))
    ap.add_argument("--from-json", help="re-print the table and summary of a results file, send nothing")
    args = ap.parse_args()

    if args.from_json:
        doc = json.loads(Path(args.from_json).read_text())
        doc["summary"] = summarise(doc["results"])
        Path(args.from_json).write_text(json.dumps(doc, indent=2) + "\n")
        report(doc)
        return

    rates = [int(x) for x in args.rates.split(",") if x.strip()]
    receivers = [r.strip() for r in args.receivers.split(",") if r.strip()]
    unknown = {r for r in receivers if r not in RECEIVERS and not r.startswith("lab@")}
    if unknown or not rates or min(rates) <= 0:
        ap.error(f"receivers must be among {', '.join(RECEIVERS)} or lab@DIR and rates positive "
                 f"(got {sorted(unknown) or rates})")
    load_before = os.getloadavg()
    sender = CSender(args.senders, args.variants) if args.sender == "c" else None
    try:
        ceiling = sender.ceiling() if sender else None
        if ceiling:
            print(f"sender ceiling: {ceiling}", flush=True)
        results = run_side_by_side(receivers, rates, args, sender.burst if sender else send_burst)
        ceiling_after = sender.ceiling() if sender else None
    finally:
        if sender:
            sender.close()

    summary = summarise(results)
    doc = {
        "benchmark": "dogstatsd",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "loadavg_before": load_before, "lab": peers.lab_tree(),
                    "loadavg_after": os.getloadavg()},
        "settings": {"rates": rates, "step_seconds": args.step_seconds, "max_per_step": args.max_per_step,
                     "rounds": args.rounds, "datagram": f"{METRIC}:1|c|#step:<n>",
                     "sender": args.sender, "senders": args.senders if args.sender == "c" else 1,
                     "variants": args.variants if args.sender == "c" else 1},
        "sender_ceiling": {"before": ceiling, "after": ceiling_after},
        "summary": summary,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    report(doc)
    print(f"wrote {out}")


def report(doc: dict) -> None:
    load = doc["machine"]["loadavg_before"][0]
    print_table(doc["results"], f"DogStatsD over loopback UDP, one metric per datagram, "
                                f"{doc['machine']['cpus']} CPUs, load {load:.1f}")
    print(f"sender ceiling (unpaced, into an unread socket): {doc.get('sender_ceiling')}")
    for kind, s in doc["summary"].items():
        print(f"{kind}: zero loss at every step up to {s['clean_up_to_median']}/s (median over rounds; "
              f"per round {s['clean_up_to_by_round']}), highest zero-loss step {s['max_clean_rate']}/s; "
              f"first loss {s.get('first_loss_by_round')}; "
              f"CPU {s.get('cpu_us_per_datagram_median_from_20k')} us/datagram (median, steps >= 20k/s)")


if __name__ == "__main__":
    main()
