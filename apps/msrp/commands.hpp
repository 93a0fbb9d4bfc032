// apps/msrp/commands.hpp: the msrp subcommands.
#pragma once

#include <string>

#include "cli.hpp"

namespace msrp::cli {

struct send_options {
  std::string text;  ///< Send this text as text/plain ...
  std::string file;  ///< ... or this file.
  std::string
      content_type;        ///< Overrides the type (default text/plain or application/octet-stream).
  bool no_report = false;  ///< Ask for no success report: delivered means the 200 came.
  int timeout = 0;         ///< Give up after this many seconds (0: never).
};

struct recv_options {
  std::string folder = ".";  ///< Where received messages are written.
  int count = 0;             ///< Stop after this many messages (0: when the peer leaves).
  int timeout = 0;           ///< Give up after this many seconds (0: never).
};

struct chat_options {
  std::string folder = ".";  ///< Where received files are written.
};

int run_send(const meeting_options& meeting, const send_options& options);
int run_recv(const meeting_options& meeting, const recv_options& options);
int run_chat(const meeting_options& meeting, const chat_options& options);

}  // namespace msrp::cli
