# The vkssm Python module against the C++ tool, the independent PyTorch reference and itself.
import json
import math
import subprocess
import threading
import wave

import numpy as np
import pytest

import vkssm
from conftest import ROOT

TINY = str(ROOT / "models/mamba1/tiny-shakespeare")
SPEECH = ROOT / "models/s4d/speech-commands"
IDS = [82, 79, 77, 69, 79, 58, 10, 87, 104, 97, 116, 32]  # tests/data/tiny_shakespeare_ref.txt
BACKENDS = ["vulkan", "cpu"]


@pytest.fixture(scope="module", params=BACKENDS)
def tiny(request):
    return vkssm.load(TINY, backend=request.param, max_streams=4, rollback_depth=2)


def step_each(model, ids, slot=0):
    model.reset(slot)
    return np.concatenate([model.step([t], [slot]) for t in ids])


def test_info(tiny):
    info = tiny.info
    assert (info.architecture, info.vocab_size, info.d_input, info.d_output) == ("mamba", 256, 0, 256)
    assert info.layers == 4 and info.state_bytes > 0 and info.weight_type == "f32"
    assert tiny.capacity == 4 and info.backend in BACKENDS and info.device


def test_devices():
    devices = vkssm.devices()
    assert devices and sum(d.is_default for d in devices) == 1


def test_logits_match_pytorch_reference(tiny):
    got = step_each(tiny, IDS)
    want = np.load(ROOT / "tests/data/tiny_shakespeare_ref.npy")
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3 * np.abs(want).max())


def test_logits_equal_cli(tiny, cli, tmp_path):
    out = tmp_path / "logits.npy"
    subprocess.run([cli, "logits", "--model", TINY, "--backend", tiny.info.backend, "--ids",
                    ",".join(map(str, IDS)), "--out", str(out)], check=True, capture_output=True)
    np.testing.assert_array_equal(step_each(tiny, np.array(IDS, dtype=np.int32)), np.load(out))


def test_batch_prefill_and_sampling(tiny):
    single = step_each(tiny, IDS)
    tiny.reset(1), tiny.reset(2)
    for t in IDS:  # two streams in one batch, a NumPy int64 array and a tuple of slots
        both = tiny.step(np.array([t, t]), (1, 2))
    np.testing.assert_allclose(both, np.stack([single[-1]] * 2), atol=1e-5)
    tiny.reset(3)
    np.testing.assert_allclose(tiny.prefill(3, IDS), single[-1], atol=1e-4)
    ids, logits = tiny.step_sample([IDS[-1]], [1], return_logits=True)  # greedy = argmax
    assert ids.dtype == np.int32 and ids[0] == int(np.argmax(logits[0]))


def test_snapshot_restore_fork_rollback(tiny):
    tiny.reset(0)
    for t in IDS[:6]:
        tiny.step([t], [0])
    blob = tiny.snapshot(0)
    assert isinstance(blob, bytes)
    rest = np.concatenate([tiny.step([t], [0]) for t in IDS[6:]])
    tiny.restore(1, blob)
    tiny.fork(1, 2)
    np.testing.assert_array_equal(np.concatenate([tiny.step([t], [1]) for t in IDS[6:]]), rest)
    np.testing.assert_array_equal(np.concatenate([tiny.step([t], [2]) for t in IDS[6:]]), rest)
    tiny.restore(3, bytearray(blob))
    a = tiny.step([IDS[6]], [3])
    tiny.step([IDS[7]], [3])
    assert tiny.rollback_available(3) == 2
    tiny.rollback(3, 1)
    np.testing.assert_array_equal(tiny.step([IDS[7]], [3]), rest[1:2])
    assert a.shape == (1, 256)


def test_auto_backend_is_the_default_and_says_why(cli):
    # What `vkssm devices` says auto picks ("auto backend: cpu \u2014 the only Vulkan device, ...").
    last = subprocess.run([cli, "devices"], check=True, capture_output=True, text=True).stdout.splitlines()[-1]
    backend, why = last.removeprefix("auto backend: ").split(" \u2014 ", 1)
    auto = vkssm.load(TINY, backend="auto", max_streams=1)
    default = vkssm.load(TINY, max_streams=1)
    for m in (auto, default):
        assert (m.info.backend, m.info.backend_reason) == (backend, f"{backend}: {why}")
    named = vkssm.load(TINY, backend=backend, max_streams=1)
    assert named.info.backend_reason == "requested"
    # The same logits, bit for bit, as the backend it chose when named.
    np.testing.assert_array_equal(step_each(auto, IDS), step_each(named, IDS))


def test_snapshot_moves_between_backends():
    gpu = vkssm.load(TINY, backend="vulkan", max_streams=1)
    cpu = vkssm.load(TINY, backend="reference", max_streams=1)
    for t in IDS[:6]:
        gpu.step([t], [0])
    cpu.restore(0, gpu.snapshot(0))
    np.testing.assert_allclose(cpu.step([IDS[6]], [0]), gpu.step([IDS[6]], [0]), atol=1e-4)


def test_engine_errors_have_the_engines_message(tiny, tmp_path):
    with pytest.raises(vkssm.Error, match=r"^slot 7 out of range \[0, 4\)$"):
        tiny.step([1], [7])
    with pytest.raises(vkssm.Error, match=r"^token id 300 out of range \[0, 256\)$"):
        tiny.step([300], [0])
    with pytest.raises(vkssm.Error, match=r"^token id -1 out of range \[0, 256\)$"):
        tiny.step_sample([-1])
    missing = tmp_path / "missing"
    with pytest.raises(vkssm.Error, match=f"^checkpoint path {missing} does not exist$"):
        vkssm.load(str(missing))
    with pytest.raises(vkssm.Error, match=r"^state: only 2 bytes: too small to be a vkssm state$"):
        tiny.restore(0, b"xx")
    with pytest.raises(vkssm.Error, match="takes tokens: use step$"):
        tiny.step_frames(np.zeros((1, 3), np.float32))
    assert issubclass(vkssm.Error, RuntimeError)


def test_bad_arguments_name_the_argument(tiny):
    with pytest.raises(TypeError, match="^tokens: expected an integer array, got dtype float32$"):
        tiny.step(np.zeros(2, np.float32))
    with pytest.raises(TypeError, match=r"^tokens\[1\]: expected an integer, got str$"):
        tiny.step([1, "a"])
    with pytest.raises(TypeError, match="^tokens: expected integers, got str$"):
        tiny.step("ab")
    with pytest.raises(ValueError, match="^tokens: expected a 1-D array, got 2 dimensions$"):
        tiny.step(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="^tokens: a step needs at least one stream, got none$"):
        tiny.step([])
    with pytest.raises(ValueError, match="^slots: 1 slots for 2 tokens$"):
        tiny.step([1, 2], [0])
    with pytest.raises(ValueError, match=r"^tokens\[0\]: 4294967296 does not fit in int32$"):
        tiny.step([2**32])
    with pytest.raises(TypeError, match="^data: expected bytes, got str$"):
        tiny.restore(0, "blob")
    with pytest.raises(ValueError, match="^backend: expected 'auto', 'vulkan', 'reference' or 'cpu', got 'gpu'$"):
        vkssm.load(TINY, backend="gpu")
    with pytest.raises(ValueError, match="^weights: expected 'auto', 'f32', 'f16', 'q8_0', 'q4_0', 'q4_k', 'q5_k' or 'q6_k', got 'int8'$"):
        vkssm.load(TINY, weights="int8")


def test_threads_step_one_model(tiny):
    want = step_each(tiny, IDS)
    results, errors = {}, []

    def run(slot):
        try:
            tiny.reset(slot)
            results[slot] = np.concatenate([tiny.step([t], [slot]) for t in IDS])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for s in range(4):
        np.testing.assert_allclose(results[s], want, atol=1e-5)


def test_frame_model_matches_reference():
    s4d = vkssm.load(str(ROOT / "tests/data/s4d_tiny"), backend="vulkan", max_streams=1)
    inputs = np.load(ROOT / "tests/data/s4d_tiny_inputs.npy")
    want = np.load(ROOT / "tests/data/s4d_tiny_ref.npy")
    frames = inputs.reshape(-1, inputs.shape[-1])[: want.reshape(-1, want.shape[-1]).shape[0]]
    got = np.concatenate([s4d.step_frames(f[None, :]) for f in frames])
    np.testing.assert_allclose(got, want.reshape(got.shape), atol=1e-3 * np.abs(want).max())
    with pytest.raises(ValueError, match=r"^frames: expected shape \(N, 3\), got \(3,\)$"):
        s4d.step_frames(frames[0])
    with pytest.raises(TypeError, match="^frames: expected a float32 array, got dtype <U1$"):
        s4d.step_frames(np.array([["a", "b", "c"]]))


def test_stream_pool():
    model = vkssm.load(TINY, backend="vulkan", max_streams=2)
    pool = vkssm.StreamPool(model)
    a = pool.open()
    pool.feed(a, IDS)
    assert pool.pending(a) == len(IDS) and pool.prefill(a) == len(IDS) - 1
    (r,) = pool.step()
    assert r["stream"] == a and r["token_fed"] == IDS[-1]
    b = pool.fork(a)
    pool.set_sampling(b, temperature=0.8, top_k=20, seed=3)
    pool.feed(a, [IDS[0]]), pool.feed(b, [IDS[0]])
    results = pool.step_sample(feed_back=True)
    assert [x["stream"] for x in results] == [a, b] and all(x["sampled"] >= 0 for x in results)
    pool.close(a)
    with pytest.raises(vkssm.Error):
        pool.feed(a, [1])


def test_generate_equals_cli(cli):
    model = vkssm.load(TINY, backend="vulkan", max_streams=1)
    pieces = []
    text = vkssm.generate(model, "ROMEO:", max_tokens=60, temperature=0.8, top_k=0, seed=1, on_text=pieces.append)
    out = subprocess.run([cli, "generate", "--model", TINY, "--backend", "vulkan", "--prompt", "ROMEO:", "-n", "60",
                          "--temperature", "0.8", "--seed", "1"], check=True, capture_output=True, text=True).stdout
    assert "ROMEO:" + text == out.rstrip("\n") and "".join(pieces) == text
    assert model.tokenizer.decode(model.tokenizer.encode("to be")) == "to be"


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        rate = w.getframerate()
    if pcm.shape[1] == 1:
        return rate, np.ascontiguousarray(pcm[:, 0])  # int16, as it is
    f = pcm.astype(np.float32) / np.float32(32768)  # stereo: the float mean, as the tool's reader does
    return rate, (f[:, 0] + f[:, 1]) * np.float32(0.5)


def test_listener_equals_cli(cli):
    wavs = sorted((SPEECH / "demo").glob("command-*.wav"))
    out = subprocess.run([cli, "listen", "--backend", "vulkan", "--json", *map(str, wavs)], check=True,
                         capture_output=True, text=True).stdout
    want = sorted((e["stream"], e["word"], e["time"], e["score"]) for e in map(json.loads, out.splitlines()))
    assert want

    # Three hops per step: the same events as the tool's one.
    listener = vkssm.Listener(str(SPEECH), backend="vulkan", max_streams=len(wavs), frames_per_step=3)
    assert "yes" in listener.commands
    for wav in wavs:
        rate, pcm = read_wav(wav)
        s = listener.open_stream(rate)
        for start in range(0, len(pcm), 4000):  # chunks of any size
            listener.push(s, pcm[start:start + 4000])
        listener.finish(s)
    events = []
    while listener.open_streams:
        listener.process()
        events += listener.poll()
    def rounded(x, scale):  # as the tool prints them: std::round(x * scale) / scale
        return math.floor(x * scale + 0.5) / scale

    got = sorted((e.stream, e.word, rounded(e.time, 100), rounded(e.score, 1000)) for e in events)
    assert got == want
    with pytest.raises(TypeError, match="^samples: expected dtype int16 or float32, got float64$"):
        listener.push(0, np.zeros(10))
