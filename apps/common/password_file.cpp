#include "password_file.hpp"

#include <cstdlib>
#include <fstream>

#include <sys/stat.h>

namespace msrp::apps {

std::variant<std::string, password_problem> read_relay_password(const std::string& file) {
  if (file.empty()) {
    const char* value = std::getenv("MSRP_PASSWORD");
    if (!value) return password_problem{"--relay needs --password-file or MSRP_PASSWORD"};
    return std::string(value);
  }
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) return password_problem{"cannot read " + file};
  if (info.st_mode & 077) {
    return password_problem{file + " is readable by others; chmod 600 it"};
  }
  std::ifstream in(file);
  std::string line;
  if (!std::getline(in, line) || line.empty()) return password_problem{"no password in " + file};
  if (line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace msrp::apps
