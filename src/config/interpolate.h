// interpolate(): `${VAR}` / `${VAR:-default}` substitution in config scalar values.
//
// Rules (docs/configuration.md, "Interpolation"):
//  - `${VAR}` is replaced by the value of VAR; an unset VAR is an error. A set-but-empty VAR
//    yields "".
//  - `${VAR:-default}` is replaced by VAR's value, or by `default` when VAR is unset or empty
//    (shell semantics). The default may be empty and may itself contain `${...}` references.
//  - `$${` is a literal `${`. Any other `$` is kept as is.
//  - VAR matches [A-Za-z_][A-Za-z0-9_]*. Substituted values are not scanned again.
// Contract: pure apart from calling `env`; thread-safe if `env` is.
#pragma once

#include <string>
#include <string_view>

#include "spate/config.h"
#include "spate/status.h"

namespace spate::config {

/// The interpolated text, or a kConfig Status whose message says what is wrong (no location).
Result<std::string> interpolate(std::string_view text, const EnvLookup& env);

}  // namespace spate::config
