// spate-test-kafka: a test helper, not part of the product. Starts librdkafka's mock Kafka
// cluster (the real Kafka protocol on loopback) so that separate `spate` processes and `kcat`
// can use it, and takes fault-injection commands on stdin.
//
//   spate-test-kafka [--brokers N] [--topic NAME:PARTITIONS[:REPLICAS]]...
//
// Prints "bootstrap HOST:PORT,..." on stdout once the cluster is up, then reads one command per
// line and answers "ok" or "error MESSAGE" on stdout:
//   topic NAME PARTITIONS [REPLICAS]       create a topic
//   down BROKER | up BROKER                take a broker off / back on the network
//   rtt BROKER MS                          add round-trip latency to a broker
//   leader TOPIC PARTITION BROKER          move a partition's leader
//   coordinator group|transaction KEY BROKER   move a group or transaction coordinator
//   errors APIKEY ERRCODE COUNT            fail the next COUNT requests of APIKEY with ERRCODE
//   clear APIKEY                           drop queued request errors of APIKEY
//   quit                                   (also on end of input or SIGTERM)
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string reply(rd_kafka_resp_err_t e) {
  return e == RD_KAFKA_RESP_ERR_NO_ERROR ? "ok" : std::string("error ") + rd_kafka_err2str(e);
}

std::string create_topic(rd_kafka_mock_cluster_t* mc, const std::string& spec) {
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  if (parts.empty() || parts.size() > 3) return "error expected NAME:PARTITIONS[:REPLICAS]";
  const int partitions = parts.size() > 1 ? std::atoi(parts[1].c_str()) : 1;
  const int replicas = parts.size() > 2 ? std::atoi(parts[2].c_str()) : 1;
  return reply(rd_kafka_mock_topic_create(mc, parts[0].c_str(), partitions, replicas));
}

}  // namespace

int main(int argc, char** argv) {
  int brokers = 3;
  std::vector<std::string> topics;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--brokers" && i + 1 < argc) {
      brokers = std::atoi(argv[++i]);
    } else if (a == "--topic" && i + 1 < argc) {
      topics.emplace_back(argv[++i]);
    } else {
      std::fprintf(
          stderr,
          "usage: spate-test-kafka [--brokers N] [--topic NAME:PARTITIONS[:REPLICAS]]...\n");
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) {
    std::fprintf(stderr, "spate-test-kafka: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (mc == nullptr) {
    std::fprintf(stderr, "spate-test-kafka: cannot start the mock cluster\n");
    return 1;
  }
  for (const std::string& t : topics) {
    const std::string r = create_topic(mc, t);
    if (r != "ok") {
      std::fprintf(stderr, "spate-test-kafka: --topic %s: %s\n", t.c_str(), r.c_str());
      return 2;
    }
  }
  std::printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
  std::fflush(stdout);
  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    std::string out;
    if (cmd.empty()) {
      continue;
    } else if (cmd == "quit") {
      break;
    } else if (cmd == "topic") {
      std::string name;
      int partitions = 1;
      int replicas = 1;
      in >> name >> partitions;
      if (!(in >> replicas)) replicas = 1;
      out = reply(rd_kafka_mock_topic_create(mc, name.c_str(), partitions, replicas));
    } else if (cmd == "down" || cmd == "up") {
      int b = 0;
      in >> b;
      out = reply(cmd == "down" ? rd_kafka_mock_broker_set_down(mc, b)
                                : rd_kafka_mock_broker_set_up(mc, b));
    } else if (cmd == "rtt") {
      int b = 0;
      int ms = 0;
      in >> b >> ms;
      out = reply(rd_kafka_mock_broker_set_rtt(mc, b, ms));
    } else if (cmd == "leader") {
      std::string topic;
      int p = 0;
      int b = 0;
      in >> topic >> p >> b;
      out = reply(rd_kafka_mock_partition_set_leader(mc, topic.c_str(), p, b));
    } else if (cmd == "coordinator") {
      std::string type;
      std::string key;
      int b = 0;
      in >> type >> key >> b;
      out = reply(rd_kafka_mock_coordinator_set(mc, type.c_str(), key.c_str(), b));
    } else if (cmd == "errors") {
      int api = 0;
      int code = 0;
      size_t cnt = 0;
      in >> api >> code >> cnt;
      std::vector<rd_kafka_resp_err_t> errs(cnt, static_cast<rd_kafka_resp_err_t>(code));
      rd_kafka_mock_push_request_errors_array(mc, static_cast<int16_t>(api), cnt, errs.data());
      out = "ok";
    } else if (cmd == "clear") {
      int api = 0;
      in >> api;
      rd_kafka_mock_clear_request_errors(mc, static_cast<int16_t>(api));
      out = "ok";
    } else {
      out = "error unknown command " + cmd;
    }
    std::printf("%s\n", out.c_str());
    std::fflush(stdout);
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
