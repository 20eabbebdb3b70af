// The `vkssm` Python module (pybind11): models, stream pools, the speech listener and a generate
// helper over the C++ API. The GIL is released while the engine works; vkssm::Error becomes
// vkssm.Error with the engine's message; bad Python arguments raise TypeError / ValueError naming
// the argument. python/vkssm.pyi documents the same API for type checkers.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/listener.h"
#include "engine/stream_pool.h"
#include "engine/vkssm.hpp"
#include "host/tokenizer.h"

namespace py = pybind11;
using namespace vkssm;

namespace {

// ---- argument conversion ----------------------------------------------------------------------

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

// An integer sequence (list, tuple, NumPy integer array, or one int) as int32 values.
std::vector<int32_t> int32_list(py::handle obj, const char* name) {
  std::vector<int32_t> out;
  auto push = [&](int64_t v, size_t i) {
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
      throw py::value_error(std::string(name) + "[" + std::to_string(i) + "]: " + std::to_string(v) +
                            " does not fit in int32");
    out.push_back(static_cast<int32_t>(v));
  };
  if (py::isinstance<py::array>(obj)) {
    auto arr = py::reinterpret_borrow<py::array>(obj);
    const char kind = arr.dtype().kind();
    if (kind != 'i' && kind != 'u')
      throw py::type_error(std::string(name) + ": expected an integer array, got dtype " +
                           std::string(py::str(arr.dtype())));
    if (arr.ndim() > 1)
      throw py::value_error(std::string(name) + ": expected a 1-D array, got " + std::to_string(arr.ndim()) +
                            " dimensions");
    auto ints = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
    if (!ints) throw py::error_already_set();
    if (kind == 'u' && arr.dtype().itemsize() == 8) {  // uint64 beyond int64 wraps: check the originals
      auto big = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
      for (py::ssize_t i = 0; i < big.size(); ++i)
        if (big.data()[i] > uint64_t(std::numeric_limits<int32_t>::max()))
          throw py::value_error(std::string(name) + "[" + std::to_string(i) + "]: does not fit in int32");
    }
    for (py::ssize_t i = 0; i < ints.size(); ++i) push(ints.data()[i], size_t(i));
    return out;
  }
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj) || py::isinstance<py::bool_>(obj) ||
      py::isinstance<py::float_>(obj))
    throw py::type_error(std::string(name) + ": expected integers, got " + type_name(obj));
  if (py::isinstance<py::int_>(obj) || PyIndex_Check(obj.ptr())) {
    push(obj.cast<int64_t>(), 0);
    return out;
  }
  if (!py::isinstance<py::sequence>(obj))
    throw py::type_error(std::string(name) + ": expected a sequence of integers, got " + type_name(obj));
  size_t i = 0;
  for (py::handle item : obj) {
    if (py::isinstance<py::bool_>(item) || !PyIndex_Check(item.ptr()))
      throw py::type_error(std::string(name) + "[" + std::to_string(i) + "]: expected an integer, got " +
                           type_name(item));
    int overflow = 0;
    py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
    if (!index) throw py::error_already_set();
    long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow) throw py::value_error(std::string(name) + "[" + std::to_string(i) + "]: does not fit in int32");
    push(v, i++);
  }
  return out;
}

// `slots` as given, or 0..batch-1 when None.
std::vector<int32_t> slot_list(py::handle slots, size_t batch, const char* batch_name) {
  if (batch == 0) throw py::value_error(std::string(batch_name) + ": a step needs at least one stream, got none");
  if (slots.is_none()) {
    std::vector<int32_t> out(batch);
    for (size_t i = 0; i < batch; ++i) out[i] = static_cast<int32_t>(i);
    return out;
  }
  std::vector<int32_t> out = int32_list(slots, "slots");
  if (out.size() != batch)
    throw py::value_error("slots: " + std::to_string(out.size()) + " slots for " + std::to_string(batch) + " " +
                          batch_name);
  return out;
}

// A float array of the given shape (-1: any) as C-contiguous float32.
py::array_t<float, py::array::c_style> float_array(py::handle obj, const char* name, std::vector<py::ssize_t> shape) {
  py::array arr = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj)
                                                   : py::array(py::module_::import("numpy").attr("asarray")(obj));
  const char kind = arr.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u')
    throw py::type_error(std::string(name) + ": expected a float32 array, got dtype " + std::string(py::str(arr.dtype())));
  auto shape_text = [](const std::vector<py::ssize_t>& s) {
    std::string t = "(";
    for (size_t i = 0; i < s.size(); ++i)
      t += (i ? ", " : "") + (s[i] < 0 ? std::string("N") : std::to_string(s[i]));
    return t + (s.size() == 1 ? ",)" : ")");
  };
  std::vector<py::ssize_t> got(arr.shape(), arr.shape() + arr.ndim());
  bool ok = got.size() == shape.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || shape[i] == got[i];
  if (!ok)
    throw py::value_error(std::string(name) + ": expected shape " + shape_text(shape) + ", got " + shape_text(got));
  return py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
}

std::vector<uint8_t> byte_buffer(py::handle obj, const char* name) {
  if (!PyObject_CheckBuffer(obj.ptr()) || py::isinstance<py::str>(obj))
    throw py::type_error(std::string(name) + ": expected bytes, got " + type_name(obj));
  py::buffer_info info = py::reinterpret_borrow<py::buffer>(obj).request();
  const auto* p = static_cast<const uint8_t*>(info.ptr);
  return std::vector<uint8_t>(p, p + info.size * info.itemsize);
}

// ---- Model ------------------------------------------------------------------------------------

struct PyModel {
  std::unique_ptr<Model> model;
  std::string path;
  std::mutex mutex;  // the engine is not thread-safe: one call at a time (taken with the GIL released)
  std::once_flag tokenizer_once;
  std::shared_ptr<Tokenizer> tokenizer;

  const ModelInfo& info() const { return model->info(); }
  std::shared_ptr<Tokenizer> get_tokenizer() {
    std::call_once(tokenizer_once, [&] { tokenizer = load_tokenizer_for_path(path); });
    return tokenizer;
  }
};

// Runs f() on the model with the GIL released and the model's lock held.
template <class F>
void engine_call(PyModel& m, F&& f) {
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(m.mutex);
  f();
}

void require_token_model(const PyModel& m, const char* what) {
  if (m.info().d_input > 0)
    throw Error(std::string(what) + ": model '" + m.path + "' (" + m.info().architecture +
                ") takes input frames: use step_frames");
}

LoadOptions load_options(const std::string& backend, py::handle device, const std::string& weights,
                         int max_streams, int rollback_depth) {
  LoadOptions opt;
  const std::optional<BackendKind> kind = backend_from_name(backend);
  if (!kind) throw py::value_error("backend: expected 'auto', 'vulkan', 'reference' or 'cpu', got '" + backend + "'");
  opt.backend = *kind;
  if (!device.is_none()) {
    if (!py::isinstance<py::int_>(device) || py::isinstance<py::bool_>(device))
      throw py::type_error("device: expected an int or None, got " + type_name(device));
    opt.device = device.cast<int>();
    if (opt.device < 0) throw py::value_error("device: expected an index >= 0, got " + std::to_string(opt.device));
  }
  if (weights == "auto") opt.weights = WeightStorage::Auto;
  else if (weights == "f32") opt.weights = WeightStorage::F32;
  else if (weights == "f16") opt.weights = WeightStorage::F16;
  else if (weights == "q8_0") opt.weights = WeightStorage::Q8_0;
  else if (weights == "q4_0") opt.weights = WeightStorage::Q4_0;
  else if (weights == "q4_k") opt.weights = WeightStorage::Q4_K;
  else if (weights == "q5_k") opt.weights = WeightStorage::Q5_K;
  else if (weights == "q6_k") opt.weights = WeightStorage::Q6_K;
  else
    throw py::value_error("weights: expected 'auto', 'f32', 'f16', 'q8_0', 'q4_0', 'q4_k', 'q5_k' or 'q6_k', got '" +
                          weights + "'");
  if (max_streams < 0) throw py::value_error("max_streams: expected >= 0, got " + std::to_string(max_streams));
  if (rollback_depth < 0) throw py::value_error("rollback_depth: expected >= 0, got " + std::to_string(rollback_depth));
  opt.max_streams = max_streams;
  opt.rollback_depth = rollback_depth;
  return opt;
}

std::shared_ptr<PyModel> load(const std::string& path, const std::string& backend, py::handle device,
                              const std::string& weights, int max_streams, int rollback_depth) {
  LoadOptions opt = load_options(backend, device, weights, max_streams, rollback_depth);
  auto m = std::make_shared<PyModel>();
  m->path = path;
  {
    py::gil_scoped_release release;
    m->model = load_model(path, opt);
  }
  return m;
}

// Per-stream sampling parameters: each of temperature / top_k / seed is one value for every
// stream or a sequence with one per stream.
std::vector<SamplingParams> sampling_list(py::handle temperature, py::handle top_k, py::handle seed, size_t batch) {
  auto pick = [&](py::handle v, const char* name, size_t i) -> py::object {
    if (py::isinstance<py::sequence>(v) && !py::isinstance<py::str>(v)) {
      auto seq = py::reinterpret_borrow<py::sequence>(v);
      if (size_t(py::len(seq)) != batch)
        throw py::value_error(std::string(name) + ": " + std::to_string(py::len(seq)) + " values for " +
                              std::to_string(batch) + " tokens");
      return seq[i];
    }
    return py::reinterpret_borrow<py::object>(v);
  };
  std::vector<SamplingParams> out(batch);
  for (size_t i = 0; i < batch; ++i) {
    try {
      out[i].temperature = pick(temperature, "temperature", i).cast<float>();
      out[i].top_k = pick(top_k, "top_k", i).cast<int>();
      out[i].seed = pick(seed, "seed", i).cast<uint64_t>();
    } catch (const py::cast_error&) {
      throw py::type_error("step_sample: temperature must be float(s), top_k and seed int(s) >= 0");
    }
  }
  return out;
}

py::array_t<float> step(PyModel& m, py::handle tokens, py::handle slots) {
  require_token_model(m, "step");
  std::vector<int32_t> toks = int32_list(tokens, "tokens");
  std::vector<int32_t> sl = slot_list(slots, toks.size(), "tokens");
  py::array_t<float> out({py::ssize_t(toks.size()), py::ssize_t(m.info().vocab_size)});
  float* dst = out.mutable_data();
  engine_call(m, [&] { m.model->step(toks.data(), sl.data(), int(toks.size()), dst); });
  return out;
}

py::array_t<float> step_frames(PyModel& m, py::handle frames, py::handle slots) {
  const int64_t d_in = m.info().d_input;
  if (d_in <= 0) throw Error("step_frames: model '" + m.path + "' (" + m.info().architecture + ") takes tokens: use step");
  auto f = float_array(frames, "frames", {-1, py::ssize_t(d_in)});
  const size_t batch = size_t(f.shape(0));
  std::vector<int32_t> sl = slot_list(slots, batch, "frames");
  py::array_t<float> out({py::ssize_t(batch), py::ssize_t(m.info().d_output)});
  float* dst = out.mutable_data();
  const float* src = f.data();
  engine_call(m, [&] { m.model->step_frames(src, sl.data(), int(batch), dst); });
  return out;
}

py::object step_sample(PyModel& m, py::handle tokens, py::handle slots, py::handle temperature, py::handle top_k,
                       py::handle seed, bool return_logits) {
  require_token_model(m, "step_sample");
  std::vector<int32_t> toks = int32_list(tokens, "tokens");
  std::vector<int32_t> sl = slot_list(slots, toks.size(), "tokens");
  std::vector<SamplingParams> sp = sampling_list(temperature, top_k, seed, toks.size());
  py::array_t<int32_t> next(py::ssize_t(toks.size()));
  py::array_t<float> logits;
  if (return_logits) logits = py::array_t<float>({py::ssize_t(toks.size()), py::ssize_t(m.info().vocab_size)});
  int32_t* ids = next.mutable_data();
  float* dst = return_logits ? logits.mutable_data() : nullptr;
  engine_call(m, [&] { m.model->step_sample(toks.data(), sl.data(), int(toks.size()), sp.data(), ids, dst); });
  if (return_logits) return py::make_tuple(next, logits);
  return next;
}

py::object prefill(PyModel& m, int slot, py::handle tokens, bool return_logits) {
  require_token_model(m, "prefill");
  std::vector<int32_t> toks = int32_list(tokens, "tokens");
  py::array_t<float> logits;
  if (return_logits) logits = py::array_t<float>(py::ssize_t(m.info().vocab_size));
  float* dst = return_logits ? logits.mutable_data() : nullptr;
  engine_call(m, [&] { m.model->prefill(slot, toks.data(), int(toks.size()), dst); });
  if (return_logits) return logits;
  return py::none();
}

// ---- generate ---------------------------------------------------------------------------------

std::string generate(PyModel& m, py::handle prompt, int max_tokens, float temperature, int top_k, uint64_t seed,
                     int slot, py::handle on_text) {
  require_token_model(m, "generate");
  if (max_tokens < 0) throw py::value_error("max_tokens: expected >= 0, got " + std::to_string(max_tokens));
  std::shared_ptr<Tokenizer> tok;
  {
    py::gil_scoped_release release;
    tok = m.get_tokenizer();
  }
  if (!tok)
    throw Error("model '" + m.path + "' has no tokenizer (tokenizer.json, or \"vkssm_tokenizer\" in config.json)");
  std::vector<int32_t> ids = py::isinstance<py::str>(prompt) ? tok->encode(prompt.cast<std::string>())
                                                             : int32_list(prompt, "prompt");
  if (ids.empty()) throw Error("the prompt encodes to no tokens: give a non-empty prompt");
  if (!on_text.is_none() && !PyCallable_Check(on_text.ptr()))
    throw py::type_error("on_text: expected a callable or None, got " + type_name(on_text));

  // Token bytes become text through Python's incremental UTF-8 decoder, so a character split
  // across tokens is emitted once whole.
  py::object decoder = py::module_::import("codecs").attr("getincrementaldecoder")("utf-8")("replace");
  std::string text;
  auto emit = [&](const std::string& bytes, bool final) {
    std::string piece = decoder.attr("decode")(py::bytes(bytes), final).cast<std::string>();
    if (piece.empty()) return;
    text += piece;
    if (!on_text.is_none()) on_text(piece);
  };

  const SamplingParams sp{temperature, top_k, seed};
  const int32_t eos = tok->eos_id();
  engine_call(m, [&] {
    m.model->reset(slot);
    if (ids.size() > 1) m.model->prefill(slot, ids.data(), int(ids.size() - 1), nullptr);
  });
  int32_t fed = ids.back();
  for (int i = 0; i < max_tokens; ++i) {
    int32_t next = -1;
    engine_call(m, [&] { m.model->step_sample(&fed, &slot, 1, &sp, &next); });
    if (next == eos) break;
    emit(tok->decode_token(next), false);
    fed = next;
  }
  emit("", true);
  return text;
}

// ---- StreamPool -------------------------------------------------------------------------------

// The pool and the model it steps: pool calls take the model's lock too, so direct Model calls
// from other threads wait instead of racing.
struct PyPool {
  std::shared_ptr<PyModel> model;
  std::unique_ptr<StreamPool> pool;

  template <class F>
  auto call(F&& f) {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(model->mutex);
    return f(*pool);
  }
};

py::list step_results(std::vector<StepResult>&& results) {
  py::list out;
  for (StepResult& r : results) {
    py::dict d;
    d["stream"] = r.stream;
    d["token_fed"] = r.token_fed;
    d["sampled"] = r.sampled;
    if (r.logits.empty()) d["logits"] = py::none();
    else d["logits"] = py::array_t<float>(py::ssize_t(r.logits.size()), r.logits.data());
    out.append(std::move(d));
  }
  return out;
}

// ---- Listener ---------------------------------------------------------------------------------

// The shipped speech-command model: beside an installed `vkssm` tool, else the source tree when
// the module runs from <source>/build*/python/.
std::string default_listener_model() {
  std::string dir = Listener::default_model_dir();
  if (!dir.empty()) return dir;
  std::filesystem::path here = py::module_::import("vkssm").attr("__file__").cast<std::string>();
  std::filesystem::path candidate = here.parent_path() / ".." / ".." / "models" / "s4d" / "speech-commands";
  std::error_code ec;
  if (std::filesystem::exists(candidate / "config.json", ec)) return std::filesystem::weakly_canonical(candidate, ec).string();
  throw Error("no speech-command model found next to the vkssm tool or the module: give model_dir");
}

std::unique_ptr<Listener> make_listener(py::handle model_dir, const std::string& backend, py::handle device,
                                        int max_streams, float threshold, int window, int refractory,
                                        int frames_per_step) {
  ListenerOptions opt;
  opt.load = load_options(backend, device, "auto", max_streams, 0);
  opt.load.frames_per_step = frames_per_step;  // checked by the load
  opt.threshold = threshold;
  opt.window = window;
  opt.refractory = refractory;
  std::string dir = model_dir.is_none() ? default_listener_model() : model_dir.cast<std::string>();
  py::gil_scoped_release release;
  return std::make_unique<Listener>(dir, opt);
}

void listener_push(Listener& l, int stream, py::handle samples) {
  if (!py::isinstance<py::array>(samples))
    throw py::type_error("samples: expected a 1-D numpy int16 or float32 array, got " + type_name(samples));
  auto arr = py::reinterpret_borrow<py::array>(samples);
  if (arr.ndim() != 1)
    throw py::value_error("samples: expected a 1-D (mono) array, got " + std::to_string(arr.ndim()) + " dimensions");
  if (arr.dtype().is(py::dtype::of<int16_t>())) {
    auto a = py::array_t<int16_t, py::array::c_style>::ensure(arr);
    py::gil_scoped_release release;
    l.push_s16(stream, a.data(), size_t(a.size()));
  } else if (arr.dtype().is(py::dtype::of<float>())) {
    auto a = py::array_t<float, py::array::c_style>::ensure(arr);
    py::gil_scoped_release release;
    l.push(stream, a.data(), size_t(a.size()));
  } else {
    throw py::type_error("samples: expected dtype int16 or float32, got " + std::string(py::str(arr.dtype())));
  }
}

}  // namespace

PYBIND11_MODULE(vkssm, m) {
  m.doc() = "vkssm: State Space Models (Mamba-1, Falcon-Mamba, Mamba-2, S4D) stepped token by token on Vulkan.";
  py::register_exception<Error>(m, "Error", PyExc_RuntimeError);

  py::class_<DeviceInfo>(m, "Device", "A Vulkan device as devices() lists it.")
      .def_readonly("index", &DeviceInfo::index)
      .def_readonly("name", &DeviceInfo::name)
      .def_readonly("type", &DeviceInfo::type, "'discrete', 'integrated', 'virtual', 'cpu' or 'other'")
      .def_readonly("api_version", &DeviceInfo::api_version)
      .def_readonly("storage16", &DeviceInfo::storage16)
      .def_readonly("float16", &DeviceInfo::float16)
      .def_readonly("storage8", &DeviceInfo::storage8)
      .def_readonly("subgroup_size", &DeviceInfo::subgroup_size)
      .def_readonly("shared_memory", &DeviceInfo::shared_memory)
      .def_readonly("max_workgroup_invocations", &DeviceInfo::max_workgroup_invocations)
      .def_readonly("device_local_bytes", &DeviceInfo::device_local_bytes)
      .def_readonly("is_default", &DeviceInfo::is_default, "the device load() picks when none is named")
      .def("__repr__", [](const DeviceInfo& d) {
        return "<vkssm.Device " + std::to_string(d.index) + ": " + d.name + " (" + d.type + ")" +
               (d.is_default ? " default>" : ">");
      });
  m.def("devices", [] { py::gil_scoped_release r; return list_devices(); }, "The Vulkan devices, default marked.");
  m.def("supported_architectures", &supported_architectures, "Architecture names load() accepts.");
  m.def("validation_message_count", &validation_message_count,
        "Khronos validation-layer messages seen since the process started (VKSSM_VALIDATION=1 turns the layer on).");

  py::class_<ModelInfo>(m, "ModelInfo", "Sizes and placement of a loaded model.")
      .def_readonly("architecture", &ModelInfo::architecture)
      .def_readonly("backend", &ModelInfo::backend, "'vulkan', 'reference' or 'cpu'")
      .def_readonly("backend_reason", &ModelInfo::backend_reason,
                    "'requested', or why backend='auto' chose this backend ('cpu: the only Vulkan device, ...')")
      .def_readonly("device", &ModelInfo::device_name)
      .def_readonly("weight_type", &ModelInfo::weight_type, "'f32', 'f16', 'q8_0', 'q4_0', 'q4_k', 'q5_k' or 'q6_k'")
      .def_readonly("vocab_size", &ModelInfo::vocab_size, "token models; 0 for frame models")
      .def_readonly("d_input", &ModelInfo::d_input, "frame models: floats per input frame; 0 for token models")
      .def_readonly("d_output", &ModelInfo::d_output, "floats each step returns per stream")
      .def_readonly("d_model", &ModelInfo::d_model)
      .def_readonly("layers", &ModelInfo::n_layer)
      .def_readonly("weight_bytes", &ModelInfo::weight_bytes, "bytes of weights one step reads")
      .def_readonly("state_bytes", &ModelInfo::state_bytes_per_stream, "recurrent state bytes per stream")
      .def("__repr__", [](const ModelInfo& i) {
        return "<vkssm.ModelInfo " + i.architecture + ", " + std::to_string(i.n_layer) + " layers, d_model " +
               std::to_string(i.d_model) + ", d_output " + std::to_string(i.d_output) + ", " + i.weight_type + " on " +
               i.backend + " (" + i.device_name + ")>";
      });

  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(m, "Tokenizer", "A model's tokenizer (byte-level BPE or bytes).")
      .def("encode", &Tokenizer::encode, py::arg("text"), "Text to token ids.")
      .def("decode", [](const Tokenizer& t, py::handle ids) {
        return py::bytes(t.decode(int32_list(ids, "ids"))).attr("decode")("utf-8", "replace");
      }, py::arg("ids"), "Token ids to text (invalid UTF-8 replaced).")
      .def("decode_token", [](const Tokenizer& t, int32_t id) { return py::bytes(t.decode_token(id)); },
           py::arg("id"), "The raw bytes of one token (may be part of a UTF-8 character).")
      .def_property_readonly("eos_id", &Tokenizer::eos_id, "-1 when the tokenizer has none")
      .def_property_readonly("vocab_size", &Tokenizer::vocab_size);

  py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Model",
      "A loaded model: read-only weights and `capacity` state slots, one per stream. Thread-safe: calls\n"
      "from several threads run one at a time, with the GIL released.")
      .def_property_readonly("info", &PyModel::info, py::return_value_policy::reference_internal)
      .def_property_readonly("capacity", [](PyModel& s) { return s.model->capacity(); }, "number of state slots")
      .def_property_readonly("path", [](PyModel& s) { return s.path; })
      .def_property_readonly("max_top_k", [](PyModel& s) { return s.model->max_top_k(); },
                             "the largest top_k step_sample takes with a temperature (0: no limit)")
      .def_property_readonly("tokenizer", [](PyModel& s) {
        py::gil_scoped_release r;
        return s.get_tokenizer();
      }, "the checkpoint's tokenizer, or None")
      .def("step", &step, py::arg("tokens"), py::arg("slots") = py::none(),
           "Advances slots[i] by tokens[i] (slots default to 0..B-1); returns float32 logits [B, vocab].")
      .def("step_frames", &step_frames, py::arg("frames"), py::arg("slots") = py::none(),
           "Frame models (S4D): advances slots[i] by frames[i] ([B, d_input]); returns float32 [B, d_output].")
      .def("step_sample", &step_sample, py::arg("tokens"), py::arg("slots") = py::none(),
           py::arg("temperature") = 0.0f, py::arg("top_k") = 0, py::arg("seed") = 0, py::arg("return_logits") = false,
           "A step that also samples each stream's next token on the device (temperature 0: greedy; each\n"
           "parameter one value or one per stream). Returns int32 ids [B], or (ids, logits) with return_logits.")
      .def("prefill", &prefill, py::arg("slot"), py::arg("tokens"), py::arg("return_logits") = true,
           "Feeds tokens to one slot in few submits; returns the logits after the last one (or None).")
      .def("reset", [](PyModel& s, int slot) { engine_call(s, [&] { s.model->reset(slot); }); }, py::arg("slot"),
           "Zeroes the slot's state.")
      .def("snapshot", [](PyModel& s, int slot) {
        std::vector<uint8_t> blob;
        engine_call(s, [&] { blob = s.model->snapshot(slot); });
        return py::bytes(reinterpret_cast<const char*>(blob.data()), blob.size());
      }, py::arg("slot"), "The slot's state as a versioned, fingerprinted, checksummed blob.")
      .def("restore", [](PyModel& s, int slot, py::handle data) {
        std::vector<uint8_t> blob = byte_buffer(data, "data");
        engine_call(s, [&] { s.model->restore(slot, blob.data(), blob.size()); });
      }, py::arg("slot"), py::arg("data"), "Replaces the slot's state with a snapshot() blob (validated first).")
      .def("fork", [](PyModel& s, int from, int to) { engine_call(s, [&] { s.model->fork(from, to); }); },
           py::arg("from_slot"), py::arg("to_slot"), "to_slot gets an exact copy of from_slot's state.")
      .def("rollback", [](PyModel& s, int slot, int steps) { engine_call(s, [&] { s.model->rollback(slot, steps); }); },
           py::arg("slot"), py::arg("steps") = 1, "Undoes the slot's last steps (needs rollback_depth at load).")
      .def("rollback_available", [](PyModel& s, int slot) {
        int n = 0;
        engine_call(s, [&] { n = s.model->rollback_available(slot); });
        return n;
      }, py::arg("slot"))
      .def("counters", [](PyModel& s) {
        StepCounters c = s.model->counters();
        py::dict d;
        d["steps"] = c.steps; d["submits"] = c.submits; d["dispatches"] = c.dispatches; d["recordings"] = c.recordings;
        return d;
      })
      .def("__repr__", [](PyModel& s) { return "<vkssm.Model '" + s.path + "' " + s.info().architecture + " on " + s.info().backend + ">"; });

  m.def("load", &load, py::arg("path"), py::arg("backend") = "auto", py::arg("device") = py::none(),
        py::arg("weights") = "auto", py::arg("max_streams") = 4, py::arg("rollback_depth") = 0,
        "Loads a checkpoint folder (config.json + safetensors) or a GGUF file. backend 'auto' (Vulkan on a GPU,\n"
        "else 'cpu'; info.backend_reason says which and why), 'vulkan', 'reference' (the plain reference) or\n"
        "'cpu' (threads + SIMD);\n"
        "device: a devices() index (None: $VKSSM_DEVICE or the best); weights 'auto', 'f32', 'f16',\n"
        "'q8_0', 'q4_0', 'q4_k', 'q5_k' or 'q6_k';\n"
        "max_streams state slots; rollback_depth steps each slot can undo.");
  m.def("generate", &generate, py::arg("model"), py::arg("prompt"), py::arg("max_tokens") = 100,
        py::arg("temperature") = 0.0f, py::arg("top_k") = 0, py::arg("seed") = 0, py::arg("slot") = 0,
        py::arg("on_text") = py::none(),
        "Generates up to max_tokens after the prompt (text, or token ids) with the model's tokenizer,\n"
        "sampling on the device, in one slot (reset first). on_text(str) gets the text as it comes.\n"
        "Returns the generated text (without the prompt).");

  py::class_<StreamHandle>(m, "Stream", "A StreamPool stream handle (slot + generation).")
      .def_readonly("slot", &StreamHandle::slot)
      .def_readonly("generation", &StreamHandle::generation)
      .def("__eq__", [](const StreamHandle& a, const StreamHandle& b) { return a == b; })
      .def("__hash__", [](const StreamHandle& a) { return (size_t(a.generation) << 32) | a.slot; })
      .def("__repr__", [](const StreamHandle& a) {
        return "<vkssm.Stream slot " + std::to_string(a.slot) + " generation " + std::to_string(a.generation) + ">";
      });

  py::class_<PyPool>(m, "StreamPool",
      "Streams over a model's slots: open/close/fork/restore, input queued from any thread, one batched\n"
      "step for every stream with input. Results are dicts: stream, token_fed, sampled, logits.")
      .def(py::init([](std::shared_ptr<PyModel> model) {
        auto p = std::make_unique<PyPool>();
        p->model = model;
        p->pool = std::make_unique<StreamPool>(*model->model);
        return p;
      }), py::arg("model"))
      .def_property_readonly("capacity", [](PyPool& p) { return p.pool->capacity(); })
      .def("open_count", [](PyPool& p) { return p.call([](StreamPool& s) { return s.open_count(); }); })
      .def("open", [](PyPool& p) { return p.call([](StreamPool& s) { return s.open(); }); }, "A new stream, zero state.")
      .def("close", [](PyPool& p, StreamHandle h) { p.call([&](StreamPool& s) { s.close(h); }); }, py::arg("stream"))
      .def("reset", [](PyPool& p, StreamHandle h) { p.call([&](StreamPool& s) { s.reset(h); }); }, py::arg("stream"))
      .def("fork", [](PyPool& p, StreamHandle h) { return p.call([&](StreamPool& s) { return s.fork(h); }); },
           py::arg("stream"), "A new stream with a copy of the stream's state and sampling.")
      .def("snapshot", [](PyPool& p, StreamHandle h) {
        std::vector<uint8_t> blob = p.call([&](StreamPool& s) { return s.snapshot(h); });
        return py::bytes(reinterpret_cast<const char*>(blob.data()), blob.size());
      }, py::arg("stream"))
      .def("restore", [](PyPool& p, py::handle data) {
        std::vector<uint8_t> blob = byte_buffer(data, "data");
        return p.call([&](StreamPool& s) { return s.restore(blob.data(), blob.size()); });
      }, py::arg("data"), "Opens a stream holding a snapshot's state.")
      .def("rollback", [](PyPool& p, StreamHandle h, int steps) { p.call([&](StreamPool& s) { s.rollback(h, steps); }); },
           py::arg("stream"), py::arg("steps") = 1)
      .def("rollback_available", [](PyPool& p, StreamHandle h) {
        return p.call([&](StreamPool& s) { return s.rollback_available(h); });
      }, py::arg("stream"))
      .def("feed", [](PyPool& p, StreamHandle h, py::handle tokens) {
        std::vector<int32_t> t = int32_list(tokens, "tokens");
        p.call([&](StreamPool& s) { s.feed(h, t.data(), t.size()); });
      }, py::arg("stream"), py::arg("tokens"), "Queues tokens for the stream.")
      .def("feed_frames", [](PyPool& p, StreamHandle h, py::handle frames) {
        auto f = float_array(frames, "frames", {-1, py::ssize_t(p.model->info().d_input)});
        p.call([&](StreamPool& s) { s.feed_frames(h, f.data(), size_t(f.shape(0))); });
      }, py::arg("stream"), py::arg("frames"), "Frame models: queues frames [N, d_input].")
      .def("pending", [](PyPool& p, StreamHandle h) { return p.call([&](StreamPool& s) { return s.pending(h); }); },
           py::arg("stream"))
      .def("set_sampling", [](PyPool& p, StreamHandle h, float temperature, int top_k, uint64_t seed) {
        p.call([&](StreamPool& s) { s.set_sampling(h, SamplingParams{temperature, top_k, seed}); });
      }, py::arg("stream"), py::arg("temperature") = 0.0f, py::arg("top_k") = 0, py::arg("seed") = 0)
      .def("step", [](PyPool& p, bool want_logits) {
        return step_results(p.call([&](StreamPool& s) { return s.step(want_logits); }));
      }, py::arg("want_logits") = true, "Advances every stream with queued input by one token or frame.")
      .def("step_sample", [](PyPool& p, bool want_logits, bool feed_back) {
        SampleOptions o;
        o.want_logits = want_logits;
        o.feed_back = feed_back;
        return step_results(p.call([&](StreamPool& s) { return s.step_sample(o); }));
      }, py::arg("want_logits") = false, py::arg("feed_back") = false,
         "Like step(), also sampling each stream's next token (feed_back: queue it as the next input).")
      .def("prefill", [](PyPool& p, StreamHandle h) { return p.call([&](StreamPool& s) { return s.prefill(h); }); },
           py::arg("stream"), "Runs all but the last queued token through one prefill; returns how many.");

  py::class_<ListenerEvent>(m, "ListenerEvent", "A detected command.")
      .def_readonly("stream", &ListenerEvent::stream)
      .def_readonly("command", &ListenerEvent::command)
      .def_readonly("word", &ListenerEvent::word)
      .def_readonly("time", &ListenerEvent::time, "seconds from the start of the stream's audio")
      .def_readonly("score", &ListenerEvent::score)
      .def("__repr__", [](const ListenerEvent& e) {
        return "<vkssm.ListenerEvent stream " + std::to_string(e.stream) + " '" + e.word + "' at " +
               std::to_string(e.time) + " s, score " + std::to_string(e.score) + ">";
      });

  py::class_<Listener>(m, "Listener",
      "Speech commands in many live audio streams: push PCM from any thread, process(), poll() events.")
      .def(py::init(&make_listener), py::arg("model_dir") = py::none(), py::arg("backend") = "auto",
           py::arg("device") = py::none(), py::arg("max_streams") = 4, py::arg("threshold") = 0.0f,
           py::arg("window") = 0, py::arg("refractory") = 0, py::arg("frames_per_step") = 1,
           "model_dir None: the shipped speech-commands model. threshold/window/refractory 0: the model's own.\n"
           "frames_per_step F: each batched step takes F hops of every stream (more streams keep up,\n"
           "detections come up to F - 1 hops later; the events are the same).")
      .def_property_readonly("commands", &Listener::commands)
      .def_property_readonly("capacity", &Listener::capacity)
      .def_property_readonly("model_info", &Listener::model_info, py::return_value_policy::reference_internal)
      .def("open_stream", &Listener::open_stream, py::arg("sample_rate"), py::call_guard<py::gil_scoped_release>(),
           "A new mono stream at sample_rate Hz; returns its id.")
      .def("push", &listener_push, py::arg("stream"), py::arg("samples"),
           "Appends mono PCM: a 1-D numpy int16 or float32 (in [-1, 1]) array.")
      .def("finish", &Listener::finish, py::arg("stream"), py::call_guard<py::gil_scoped_release>(),
           "No more audio: process() runs the rest, then the stream's slot frees.")
      .def("close", &Listener::close, py::arg("stream"), py::call_guard<py::gil_scoped_release>())
      .def("done", &Listener::done, py::arg("stream"), py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("open_streams", &Listener::open_streams)
      .def("process", &Listener::process, py::call_guard<py::gil_scoped_release>(),
           "Runs batched steps while any stream has frames_per_step full hops (or its last ones); returns how many ran.")
      .def("poll", [](Listener& l) { py::gil_scoped_release r; return l.poll(); }, "Detections since the last poll.");
}
