#include "pickle.h"

#include <cstring>
#include <unordered_map>

#include "lowbit/core/error.h"

namespace lowbit::kuat::pickle {
namespace {

constexpr std::size_t kMaxMemo = 1u << 24;

class Machine {
 public:
  Machine(const std::uint8_t* data, std::size_t size, const std::string& what, std::deque<Value>& arena)
      : p_(data), n_(size), what_(what), arena_(arena) {}

  const Value* run();

 private:
  [[noreturn]] void fail(const std::string& reason) const {
    throw IoError(io_message(what_, "malformed or unsupported pickle: " + reason + " at offset " + std::to_string(op_pos_)));
  }
  const std::uint8_t* take(std::size_t k) {
    if (k > n_ - pos_) fail("unexpected end of data");
    const std::uint8_t* r = p_ + pos_;
    pos_ += k;
    return r;
  }
  std::uint64_t le(std::size_t k) {
    const std::uint8_t* b = take(k);
    std::uint64_t v = 0;
    for (std::size_t j = k; j-- > 0;) v = (v << 8) | b[j];
    return v;
  }
  std::string line() {
    const std::size_t start = pos_;
    while (pos_ < n_ && p_[pos_] != '\n') ++pos_;
    if (pos_ >= n_) fail("unterminated text argument");
    std::string s(reinterpret_cast<const char*>(p_ + start), pos_ - start);
    ++pos_;
    return s;
  }
  Value* make(Kind k) {
    arena_.emplace_back();
    arena_.back().kind = k;
    return &arena_.back();
  }
  Value* pop() {
    if (stack_.size() <= floor()) fail("stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= floor()) fail("stack underflow");
    return stack_.back();
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Value*> pop_to_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<long>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Value* bytes_value(std::size_t len, Kind kind) {
    Value* v = make(kind);
    const std::uint8_t* b = take(len);
    v->s.assign(reinterpret_cast<const char*>(b), len);
    return v;
  }
  Value* global(const std::string& module, const std::string& name);
  Value* reduce(Value* callable, Value* args);
  void build(Value* obj, Value* state);
  void memo_put(std::uint64_t key) {
    if (memo_.size() >= kMaxMemo && !memo_.count(key)) fail("memo too large");
    memo_[key] = top();
  }
  Value* memo_get(std::uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " not found");
    return it->second;
  }
  Value* as_container(Value* v, Kind k, const char* op) {
    if (v->kind != k) fail(std::string(op) + " on a value of the wrong type");
    return v;
  }

  const std::uint8_t* p_;
  std::size_t n_, pos_ = 0, op_pos_ = 0;
  const std::string& what_;
  std::deque<Value>& arena_;
  std::vector<Value*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, Value*> memo_;
};

// Python 2 writes text as byte strings (str), Python 3 as unicode: both name dtypes and orders.
bool is_text(const Value* v) { return v->kind == Kind::Str || v->kind == Kind::Bytes; }

const char* const kAllowedGlobals[] = {
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer", "_codecs.encode", "__builtin__.bytes",
    "builtins.bytes"};

Value* Machine::global(const std::string& module, const std::string& name) {
  const std::string full = module + "." + name;
  for (const char* allowed : kAllowedGlobals) {
    if (full == allowed) {
      Value* v = make(Kind::Global);
      v->s = full;
      return v;
    }
  }
  fail("global '" + full + "' is not allowed (only numpy arrays, dtypes and byte strings are read)");
}

// UTF-8 text whose code points are all < 256, back to the bytes it encodes (latin-1).
bool latin1_bytes(const std::string& text, std::string* out) {
  out->clear();
  out->reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
      ++i;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) {
      const unsigned cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu);
      if (cp < 0x80 || cp > 0xFF) return false;
      out->push_back(static_cast<char>(cp));
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

std::uint64_t shape_product(const std::vector<std::uint64_t>& shape, bool* overflow) {
  std::uint64_t total = 1;
  *overflow = false;
  for (std::uint64_t d : shape) {
    if (d != 0 && total > (std::uint64_t{1} << 48) / d) *overflow = true;
    total *= d;
  }
  return total;
}

Value* Machine::reduce(Value* callable, Value* args) {
  if (callable->kind != Kind::Global) fail("REDUCE on a non-callable");
  if (args->kind != Kind::Tuple) fail("REDUCE arguments are not a tuple");
  const auto& a = args->items;
  const std::string& fn = callable->s;
  if (fn == "_codecs.encode") {
    if (a.size() != 2 || a[0]->kind != Kind::Str || a[1]->kind != Kind::Str) fail("_codecs.encode expects (str, str)");
    const std::string& enc = a[1]->s;
    if (enc != "latin1" && enc != "latin-1" && enc != "iso-8859-1") fail("_codecs.encode with encoding '" + enc + "'");
    Value* v = make(Kind::Bytes);
    if (!latin1_bytes(a[0]->s, &v->s)) fail("_codecs.encode text is not latin-1");
    return v;
  }
  if (fn == "__builtin__.bytes" || fn == "builtins.bytes") {
    if (!a.empty()) fail("bytes() with arguments");
    return make(Kind::Bytes);
  }
  if (fn == "numpy.dtype") {
    if (a.empty() || !is_text(a[0])) fail("numpy.dtype expects a type string");
    Value* v = make(Kind::Dtype);
    v->s = a[0]->s;
    return v;
  }
  if (fn == "numpy.core.multiarray._reconstruct" || fn == "numpy._core.multiarray._reconstruct") {
    if (a.size() != 3 || a[0]->kind != Kind::Global || a[0]->s != "numpy.ndarray") fail("_reconstruct expects numpy.ndarray");
    return make(Kind::NDArray);  // filled in by BUILD
  }
  if (fn == "numpy.core.numeric._frombuffer" || fn == "numpy._core.numeric._frombuffer") {
    if (a.size() != 4 || a[0]->kind != Kind::Bytes || a[1]->kind != Kind::Dtype || a[2]->kind != Kind::Tuple ||
        !is_text(a[3])) {
      fail("_frombuffer expects (buffer, dtype, shape, order)");
    }
    if (a[3]->s != "C") fail("only C-ordered arrays are supported");
    Value* v = make(Kind::NDArray);
    v->s = a[1]->s;
    v->byteorder = a[1]->byteorder;
    for (const Value* d : a[2]->items) {
      if (d->kind != Kind::Int || d->i < 0) fail("bad array shape");
      v->shape.push_back(static_cast<std::uint64_t>(d->i));
    }
    v->data = a[0]->s;
    v->built = true;
    std::size_t item = 0;
    bool sign = false, overflow = false;
    if (!integer_dtype(v->s, &item, &sign)) fail("unsupported array dtype '" + v->s + "'");
    if (shape_product(v->shape, &overflow) * item != v->data.size() || overflow) fail("array data size does not match its shape");
    return v;
  }
  fail("cannot call '" + fn + "'");
}

void Machine::build(Value* obj, Value* state) {
  if (obj->kind == Kind::Dtype) {
    if (state->kind != Kind::Tuple || state->items.size() < 2 || !is_text(state->items[1]) ||
        state->items[1]->s.size() != 1) {
      fail("bad dtype state");
    }
    obj->byteorder = state->items[1]->s[0];
    return;
  }
  if (obj->kind == Kind::NDArray && !obj->built) {
    if (state->kind != Kind::Tuple || state->items.size() != 5) fail("bad ndarray state");
    const auto& st = state->items;
    if (st[1]->kind != Kind::Tuple || st[2]->kind != Kind::Dtype || st[4]->kind != Kind::Bytes) {
      fail("ndarray state must be (version, shape, dtype, fortran, bytes)");
    }
    if ((st[3]->kind == Kind::Bool || st[3]->kind == Kind::Int) && st[3]->i != 0) fail("Fortran-ordered arrays are not supported");
    for (const Value* d : st[1]->items) {
      if (d->kind != Kind::Int || d->i < 0) fail("bad array shape");
      obj->shape.push_back(static_cast<std::uint64_t>(d->i));
    }
    obj->s = st[2]->s;
    obj->byteorder = st[2]->byteorder;
    obj->data = st[4]->s;
    std::size_t item = 0;
    bool sign = false, overflow = false;
    if (!integer_dtype(obj->s, &item, &sign)) fail("unsupported array dtype '" + obj->s + "'");
    if (item > 1 && obj->byteorder == '>') fail("big-endian arrays are not supported");
    if (shape_product(obj->shape, &overflow) * item != obj->data.size() || overflow) fail("array data size does not match its shape");
    obj->built = true;
    return;
  }
  fail("BUILD on an object this reader does not know");
}

const Value* Machine::run() {
  for (;;) {
    op_pos_ = pos_;
    const std::uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        const unsigned proto = *take(1);
        if (proto < 2 || proto > 5) fail("protocol " + std::to_string(proto) + " is not supported");
        break;
      }
      case 0x95: take(8); break;  // FRAME: framing is transparent here
      case '.': {                 // STOP
        if (stack_.size() != 1 || !marks_.empty()) fail("STOP with " + std::to_string(stack_.size()) + " values on the stack");
        if (stack_[0]->kind == Kind::NDArray && !stack_[0]->built) fail("array was never built");
        return stack_[0];
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '0': pop(); break;
      case '1': pop_to_mark(); break;
      case '2': stack_.push_back(top()); break;
      case 'N': stack_.push_back(make(Kind::None)); break;
      case 0x88:
      case 0x89: {
        Value* v = make(Kind::Bool);
        v->i = op == 0x88;
        stack_.push_back(v);
        break;
      }
      case 'J': {
        Value* v = make(Kind::Int);
        v->i = static_cast<std::int32_t>(static_cast<std::uint32_t>(le(4)));
        stack_.push_back(v);
        break;
      }
      case 'K':
      case 'M': {
        Value* v = make(Kind::Int);
        v->i = static_cast<std::int64_t>(le(op == 'K' ? 1 : 2));
        stack_.push_back(v);
        break;
      }
      case 0x8a: {  // LONG1
        const std::size_t len = *take(1);
        if (len > 8) fail("integer wider than 64 bits");
        std::uint64_t u = len ? le(len) : 0;
        if (len > 0 && len < 8 && (u >> (8 * len - 1)) & 1) u |= ~std::uint64_t{0} << (8 * len);  // sign-extend
        Value* v = make(Kind::Int);
        v->i = static_cast<std::int64_t>(u);
        stack_.push_back(v);
        break;
      }
      case 'I': {  // INT (text): Python 2 also writes booleans as I00 / I01
        const std::string s = line();
        Value* v = make(Kind::Int);
        if (s == "00" || s == "01") {
          v->kind = Kind::Bool;
          v->i = s == "01";
        } else {
          std::size_t used = 0;
          try {
            v->i = std::stoll(s, &used);
          } catch (const std::exception&) {
            fail("bad INT text");
          }
          if (used != s.size()) fail("bad INT text");
        }
        stack_.push_back(v);
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        const std::uint8_t* b = take(8);
        std::uint64_t u = 0;
        for (int j = 0; j < 8; ++j) u = (u << 8) | b[j];
        Value* v = make(Kind::Float);
        std::memcpy(&v->f, &u, 8);
        stack_.push_back(v);
        break;
      }
      case 'T': stack_.push_back(bytes_value(le(4), Kind::Bytes)); break;   // BINSTRING (Python 2 str)
      case 'U': stack_.push_back(bytes_value(*take(1), Kind::Bytes)); break;  // SHORT_BINSTRING
      case 'B': stack_.push_back(bytes_value(le(4), Kind::Bytes)); break;   // BINBYTES
      case 'C': stack_.push_back(bytes_value(*take(1), Kind::Bytes)); break;  // SHORT_BINBYTES
      case 0x8e:                                                             // BINBYTES8
      case 0x96: stack_.push_back(bytes_value(le(8), Kind::Bytes)); break;   // BYTEARRAY8
      case 'X': stack_.push_back(bytes_value(le(4), Kind::Str)); break;     // BINUNICODE
      case 0x8c: stack_.push_back(bytes_value(*take(1), Kind::Str)); break;  // SHORT_BINUNICODE
      case 0x8d: stack_.push_back(bytes_value(le(8), Kind::Str)); break;     // BINUNICODE8
      case '}': stack_.push_back(make(Kind::Dict)); break;
      case ']': stack_.push_back(make(Kind::List)); break;
      case ')': stack_.push_back(make(Kind::Tuple)); break;
      case 'a': {
        Value* item = pop();
        as_container(top(), Kind::List, "APPEND")->items.push_back(item);
        break;
      }
      case 'e': {
        auto items = pop_to_mark();
        Value* list = as_container(top(), Kind::List, "APPENDS");
        list->items.insert(list->items.end(), items.begin(), items.end());
        break;
      }
      case 's': {
        Value* value = pop();
        Value* key = pop();
        as_container(top(), Kind::Dict, "SETITEM")->entries.emplace_back(key, value);
        break;
      }
      case 'u': {
        auto items = pop_to_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of values");
        Value* dict = as_container(top(), Kind::Dict, "SETITEMS");
        for (std::size_t j = 0; j < items.size(); j += 2) dict->entries.emplace_back(items[j], items[j + 1]);
        break;
      }
      case 'd': {
        auto items = pop_to_mark();
        if (items.size() % 2) fail("DICT with an odd number of values");
        Value* dict = make(Kind::Dict);
        for (std::size_t j = 0; j < items.size(); j += 2) dict->entries.emplace_back(items[j], items[j + 1]);
        stack_.push_back(dict);
        break;
      }
      case 'l':
      case 't': {
        Value* v = make(op == 'l' ? Kind::List : Kind::Tuple);
        v->items = pop_to_mark();
        stack_.push_back(v);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        const std::size_t k = op - 0x84u;
        if (stack_.size() < floor() + k) fail("stack underflow");
        Value* v = make(Kind::Tuple);
        v->items.assign(stack_.end() - static_cast<long>(k), stack_.end());
        stack_.resize(stack_.size() - k);
        stack_.push_back(v);
        break;
      }
      case 'q': memo_put(*take(1)); break;
      case 'r': memo_put(le(4)); break;
      case 0x94: memo_put(memo_.size()); break;
      case 'h': stack_.push_back(memo_get(*take(1))); break;
      case 'j': stack_.push_back(memo_get(le(4))); break;
      case 'c': {
        const std::string module = line();
        const std::string name = line();
        stack_.push_back(global(module, name));
        break;
      }
      case 0x93: {
        Value* name = pop();
        Value* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) fail("STACK_GLOBAL needs two strings");
        stack_.push_back(global(module->s, name->s));
        break;
      }
      case 'R': {
        Value* args = pop();
        Value* callable = pop();
        stack_.push_back(reduce(callable, args));
        break;
      }
      case 'b': {
        Value* state = pop();
        build(top(), state);
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("opcode ") + hex + " is outside the supported subset");
      }
    }
  }
}

}  // namespace

Document parse(const std::uint8_t* data, std::size_t size, const std::string& what) {
  Document doc;
  Machine m(data, size, what, doc.arena_);
  doc.root_ = m.run();
  return doc;
}

const Value* dict_get(const Value* dict, std::string_view key) {
  if (!dict || dict->kind != Kind::Dict) return nullptr;
  for (const auto& [k, v] : dict->entries) {
    if ((k->kind == Kind::Str || k->kind == Kind::Bytes) && k->s == key) return v;
  }
  return nullptr;
}

bool integer_dtype(const std::string& descr, std::size_t* bytes, bool* is_signed) {
  std::string d = descr;
  if (!d.empty() && (d[0] == '<' || d[0] == '|' || d[0] == '=')) d.erase(0, 1);
  if (d.size() != 2 || (d[0] != 'u' && d[0] != 'i') || (d[1] != '1' && d[1] != '2' && d[1] != '4' && d[1] != '8')) {
    return false;
  }
  *is_signed = d[0] == 'i';
  *bytes = static_cast<std::size_t>(d[1] - '0');
  return true;
}

bool to_int_vector(const Value* v, std::vector<std::int64_t>* out) {
  out->clear();
  if (!v) return false;
  if (v->kind == Kind::List || v->kind == Kind::Tuple) {
    for (const Value* x : v->items) {
      if (x->kind != Kind::Int && x->kind != Kind::Bool) return false;
      out->push_back(x->i);
    }
    return true;
  }
  if (v->kind == Kind::NDArray && v->built && v->shape.size() == 1) {
    std::size_t item = 0;
    bool sign = false;
    if (!integer_dtype(v->s, &item, &sign)) return false;
    const std::size_t n = v->shape[0];
    for (std::size_t j = 0; j < n; ++j) {
      std::uint64_t u = 0;
      for (std::size_t b = item; b-- > 0;) u = (u << 8) | static_cast<unsigned char>(v->data[j * item + b]);
      if (sign && item < 8 && (u >> (8 * item - 1)) & 1) u |= ~std::uint64_t{0} << (8 * item);
      out->push_back(static_cast<std::int64_t>(u));
    }
    return true;
  }
  return false;
}

bool to_string_vector(const Value* v, std::vector<std::string>* out) {
  out->clear();
  if (!v || (v->kind != Kind::List && v->kind != Kind::Tuple)) return false;
  for (const Value* x : v->items) {
    if (x->kind != Kind::Str && x->kind != Kind::Bytes) return false;
    out->push_back(x->s);
  }
  return true;
}

}  // namespace lowbit::kuat::pickle
