#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "lowbit/core/atomic_file.h"
#include "lowbit/core/error.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const char* name) {
  fs::path dir = fs::temp_directory_path() / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(AtomicFile, WritesAndReplaces) {
  const fs::path dir = fresh_dir("lowbit_atomic_ok");
  const fs::path file = dir / "out.bin";
  write_file_atomically(file.string(), [](std::ostream& out) { out << "first"; });
  EXPECT_EQ(read(file), "first");
  write_file_atomically(file.string(), [](std::ostream& out) { out << "second"; });
  EXPECT_EQ(read(file), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // no temp left
  fs::remove_all(dir);
}

TEST(AtomicFile, FailedWriteLeavesOldFileAndNoTemp) {
  const fs::path dir = fresh_dir("lowbit_atomic_fail");
  const fs::path file = dir / "out.bin";
  write_file_atomically(file.string(), [](std::ostream& out) { out << "kept"; });
  EXPECT_THROW(write_file_atomically(file.string(),
                                     [](std::ostream& out) {
                                       out << "partial";
                                       throw std::runtime_error("serialiser failed");
                                     }),
               std::runtime_error);
  EXPECT_EQ(read(file), "kept");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  fs::remove_all(dir);
}

TEST(AtomicFile, MissingFolderIsAnIoErrorNamingThePath) {
  try {
    write_file_atomically("/nonexistent-lowbit-dir/out.bin", [](std::ostream& out) { out << "x"; });
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-lowbit-dir/out.bin"), std::string::npos) << e.what();
  }
}

TEST(ReadFileBytes, ReadsWholeFilesAndNamesDirectoriesAndMissingFiles) {
  const fs::path dir = fs::temp_directory_path() / "lowbit_read_file_bytes";
  fs::create_directories(dir);
  std::string big(200000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  std::ofstream(dir / "f.bin", std::ios::binary) << big;
  const std::vector<std::uint8_t> bytes = read_file_bytes((dir / "f.bin").string(), "model file");
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), big);  // more than one read buffer
  auto message = [](const std::string& path) {
    try {
      read_file_bytes(path, "GGUF file");
    } catch (const IoError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(dir.string()).find("'" + dir.string() + "': is a directory, not a GGUF file"), std::string::npos)
      << message(dir.string());
  const std::string missing = (dir / "missing.gguf").string();
  EXPECT_NE(message(missing).find("cannot open GGUF file"), std::string::npos) << message(missing);
  EXPECT_NE(message(missing).find(missing), std::string::npos);
  fs::remove_all(dir);
}

// Only a regular file has an end: a FIFO (which would block the open or the read) and /dev/zero
// (which would grow until memory runs out) are refused before any read, naming the path.
TEST(ReadFileBytes, RefusesFifosAndDevices) {
  const fs::path dir = fresh_dir("lowbit_read_file_bytes_special");
  const fs::path fifo = dir / "fifo.gguf";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string path : {fifo.string(), std::string("/dev/zero")}) {
    try {
      read_file_bytes(path, "GGUF file");
      FAIL() << "expected IoError for " << path;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + path + "': is not a regular file"), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lowbit
