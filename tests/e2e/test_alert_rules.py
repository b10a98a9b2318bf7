"""deploy/prometheus: the alert rules pass `promtool check rules`, their unit tests
(`promtool test rules`: every alert fires where it should and not where it should not) pass, the
example scrape config passes `promtool check config`, and the reference alerts are all there.
A broken copy of the rules and a wrong expectation must fail, so the checks are not no-ops.
(tests/e2e/test_prometheus.py loads the same rules into a real Prometheus scraping a live
deployment and checks that every metric they name is exported.)"""
import os
import re
import shutil
import subprocess

from spate_e2e import *  # noqa: F403

ROOT = os.getcwd()
D = os.path.join(ROOT, "deploy", "prometheus")
promtool = shutil.which("promtool")
if promtool is None:
    print("SKIP: promtool is not installed")
    check(not os.environ.get("CI"), "promtool is installed in CI (scripts/install-deps.sh)")
    finish("test_alert_rules")


def run(*args, cwd=D):
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


r = run("check", "rules", "alerts.yaml")
check(r.returncode == 0, f"promtool check rules: {r.stdout}{r.stderr}")
r = run("test", "rules", "alerts_test.yaml")
check(r.returncode == 0 and "SUCCESS" in r.stdout, f"promtool test rules: {r.stdout}{r.stderr}")
r = run("check", "config", "prometheus.yml")
check(r.returncode == 0, f"promtool check config: {r.stdout}{r.stderr}")

text = open(os.path.join(D, "alerts.yaml")).read()
alerts = re.findall(r"^\s*- alert: (\w+)", text, re.M)
for a in ("HighIngestionLatency", "HighProcessingErrorRate", "ComponentUnhealthy", "HighConsumerLag"):
    check(a in alerts, f"the reference alert {a} is defined")
tests = open(os.path.join(D, "alerts_test.yaml")).read()
for a in alerts:
    fires = re.search(rf"alertname: {a}\n\s+exp_alerts:\n\s+- exp_labels", tests)
    quiet = re.search(rf"alertname: {a}, exp_alerts: \[\]", tests)
    check(fires and quiet, f"{a} has a case where it fires and one where it does not")

# Not no-ops: a broken rule file and a wrong expectation are refused.
tmp = tempdir()
with open(os.path.join(tmp, "alerts.yaml"), "w") as f:
    f.write(text.replace("streaming_component_health < 0.5", "streaming_component_health < < 0.5"))
r = run("check", "rules", "alerts.yaml", cwd=tmp)
check(r.returncode != 0, "a broken expression fails promtool check rules")
with open(os.path.join(tmp, "alerts.yaml"), "w") as f:
    f.write(text.replace("streaming_component_health < 0.5", "streaming_component_health < 0.1"))
shutil.copy(os.path.join(D, "alerts_test.yaml"), tmp)
r = run("test", "rules", "alerts_test.yaml", cwd=tmp)
check(r.returncode != 0, "a rule that no longer fires fails its unit test")
finish("test_alert_rules")
