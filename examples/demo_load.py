#!/usr/bin/env python3
"""Demo load for examples/quickstart.yaml (python3 standard library only).

    ./build/spate run examples/quickstart.yaml &       # or: make run (in another terminal)
    python3 examples/demo_load.py                      # ~3 minutes of user events and metrics

It posts NDJSON batches to /ingest: user events (login, view, purchase, logout) that the
`user_activity` job counts per action and minute, and CPU metrics of three hosts that the
`system_health` job averages per host and 10 s. The scenario, in event time from the start:
  - 30 s: one reading of 99.9% on web-3 (a baseline of ~35%): the `cpu_spike` anomaly fires;
  - 40 s to 100 s: web-2 runs at ~95%: two hot 10 s windows in a row fire the `cpu_hot`
    threshold alert (critical); it resolves once a window averages below 70% again.
Alerts print on spate's stdout (the `console` notifier) and land in the `alerts` topic; window
results in user_activity_1m, system_health_10s and DATA_DIR/analytics.db.

--speedup N runs event time N times faster than the wall clock (the tests use it).
"""
import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="spate's HTTP address")
    ap.add_argument("--duration", type=float, default=180, help="seconds of event time")
    ap.add_argument("--rate", type=int, default=100, help="metric readings per host and minute "
                    "of event time are rate/4; user events per second of event time = rate")
    ap.add_argument("--speedup", type=float, default=1.0, help="event time / wall time")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    start_ms = int(time.time() * 1000)
    wall0 = time.monotonic()
    step_ms = 250  # one batch per 250 ms of event time
    actions = ["login", "view", "view", "view", "purchase", "logout"]
    sent = 0
    t = 0
    while t <= args.duration * 1000:
        now_ms = start_ms + t
        lines = []
        for _ in range(max(1, args.rate * step_ms // 1000)):
            lines.append({"user_id": f"u{rng.randrange(500)}", "action": rng.choice(actions),
                          "timestamp": now_ms + rng.randrange(step_ms)})
        for host in ("web-1", "web-2", "web-3"):
            cpu = rng.gauss(35, 3)
            if host == "web-2" and 40_000 <= t < 100_000:
                cpu = rng.gauss(95, 1.5)
            if host == "web-3" and t == 30_000:
                cpu = 99.9
            lines.append({"host": host, "cpu_percent": round(min(cpu, 100.0), 2),
                          "timestamp": now_ms})
        body = "".join(json.dumps(x) + "\n" for x in lines).encode()
        req = urllib.request.Request(args.url + "/ingest", data=body, method="POST",
                                     headers={"Content-Type": "application/x-ndjson"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                r.read()
        except urllib.error.HTTPError as e:
            print(f"demo_load: HTTP {e.code}: {e.read()[:200]!r}", file=sys.stderr)
        except OSError as e:
            print(f"demo_load: {args.url}: {e}", file=sys.stderr)
            return 1
        sent += len(lines)
        t += step_ms
        # Pace event time against the wall clock.
        ahead = t / 1000 / args.speedup - (time.monotonic() - wall0)
        if ahead > 0:
            time.sleep(ahead)
    print(f"demo_load: sent {sent} events over {args.duration:.0f} s of event time "
          f"in {time.monotonic() - wall0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
