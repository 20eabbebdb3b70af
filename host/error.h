#pragma once
// The one exception type vkssm throws. Messages name the file, tensor or limit at fault so a
// user can act on them without a debugger.
#include <stdexcept>
#include <string>

#include "vkssm_export.h"

namespace vkssm {

class VKSSM_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace vkssm
