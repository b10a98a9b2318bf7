// OpenSSL's error queue as text, for the TLS code of the HTTP server and client.
#pragma once

#include <string>

namespace spate {

/// The most recent error in this thread's OpenSSL error queue as text ("" if none); the queue
/// is cleared.
std::string openssl_error();

}  // namespace spate
