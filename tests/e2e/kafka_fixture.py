"""The mock Kafka cluster for e2e tests: `spate-test-kafka` (tests/kafka, librdkafka's mock
cluster, 3 brokers on loopback, the real Kafka protocol) as a child process, with its
fault-injection commands, and `kcat` (Debian package) next to it."""
import os
import re
import shutil
import subprocess

from spate_e2e import SPATE

HELPER = os.path.join(os.path.dirname(SPATE), "spate-test-kafka")
KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def pipeline_topics(path):
    """(name, partitions) of the `topics:` list of a pipeline file (block style as in examples/)."""
    text = open(path).read()
    return [(m.group(1), int(m.group(2))) for m in
            re.finditer(r"^\s*- name: (\S+).*\n\s+partitions: (\d+)", text, re.M)]


class MockKafka:
    def __init__(self, topics=(), brokers=3):
        args = [HELPER, "--brokers", str(brokers)]
        for name, parts in topics:
            args += ["--topic", f"{name}:{parts}:{min(3, brokers)}"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "bootstrap", f"spate-test-kafka did not start: {line}"
        self.bootstrap = line[1]

    def command(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == "ok", f"spate-test-kafka {cmd}: {answer}"

    def env(self, **extra):
        e = dict(os.environ)
        e["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        e.update(extra)
        return e

    def kcat(self, *args, input=None, timeout=60):
        return subprocess.run([KCAT, "-b", self.bootstrap, *args], input=input,
                              capture_output=True, timeout=timeout)

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
