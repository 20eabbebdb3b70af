"""vkssm: State Space Models (Mamba-1, Falcon-Mamba, Mamba-2, S4D) stepped token by token on Vulkan.

Type stub of the compiled module (python/vkssm_module.cpp). Token arguments take int sequences or
NumPy integer arrays; engine errors raise vkssm.Error with the engine's message; bad arguments
raise TypeError / ValueError naming the argument. The GIL is released while the engine works.
"""
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

Tokens = Union[Sequence[int], npt.NDArray[np.integer], int]
Buffer = Union[bytes, bytearray, memoryview]

class Error(RuntimeError):
    """An error the engine reported (bad file, token, slot, state blob, device error, ...)."""

class Device:
    index: int
    name: str
    type: str  # "discrete", "integrated", "virtual", "cpu", "other"
    api_version: int
    storage16: bool
    float16: bool
    storage8: bool
    subgroup_size: int
    shared_memory: int
    max_workgroup_invocations: int
    device_local_bytes: int
    is_default: bool

def devices() -> list[Device]: ...
def supported_architectures() -> list[str]: ...
def validation_message_count() -> int: ...

class ModelInfo:
    architecture: str
    backend: str  # "vulkan", "reference" or "cpu"
    backend_reason: str  # "requested", or why backend="auto" chose it: "cpu: the only Vulkan device, ..."
    device: str
    weight_type: str  # "f32", "f16", "q8_0", "q4_0", "q4_k", "q5_k" or "q6_k"
    vocab_size: int  # 0 for frame models
    d_input: int  # 0 for token models
    d_output: int
    d_model: int
    layers: int
    weight_bytes: int
    state_bytes: int  # per stream

class Tokenizer:
    eos_id: int  # -1: none
    vocab_size: int
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Tokens) -> str: ...
    def decode_token(self, id: int) -> bytes: ...

class Model:
    info: ModelInfo
    capacity: int
    path: str
    max_top_k: int
    tokenizer: Optional[Tokenizer]
    def step(self, tokens: Tokens, slots: Optional[Tokens] = None) -> npt.NDArray[np.float32]:
        """Advances slots[i] by tokens[i]; returns logits [B, vocab]."""
    def step_frames(self, frames: npt.ArrayLike, slots: Optional[Tokens] = None) -> npt.NDArray[np.float32]:
        """Frame models: frames [B, d_input] -> outputs [B, d_output]."""
    def step_sample(
        self,
        tokens: Tokens,
        slots: Optional[Tokens] = None,
        temperature: Union[float, Sequence[float]] = 0.0,
        top_k: Union[int, Sequence[int]] = 0,
        seed: Union[int, Sequence[int]] = 0,
        return_logits: bool = False,
    ) -> Union[npt.NDArray[np.int32], tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]]: ...
    def prefill(self, slot: int, tokens: Tokens, return_logits: bool = True) -> Optional[npt.NDArray[np.float32]]: ...
    def reset(self, slot: int) -> None: ...
    def snapshot(self, slot: int) -> bytes: ...
    def restore(self, slot: int, data: Buffer) -> None: ...
    def fork(self, from_slot: int, to_slot: int) -> None: ...
    def rollback(self, slot: int, steps: int = 1) -> None: ...
    def rollback_available(self, slot: int) -> int: ...
    def counters(self) -> dict[str, int]: ...

def load(
    path: str,
    # "auto": Vulkan on a GPU; "cpu" where the only Vulkan devices are CPU implementations (lavapipe)
    # or there is no Vulkan; a device named by `device` or $VKSSM_DEVICE runs Vulkan whatever its type.
    backend: Literal["auto", "vulkan", "reference", "cpu"] = "auto",
    device: Optional[int] = None,
    weights: Literal["auto", "f32", "f16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"] = "auto",
    max_streams: int = 4,
    rollback_depth: int = 0,
) -> Model: ...

def generate(
    model: Model,
    prompt: Union[str, Tokens],
    max_tokens: int = 100,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
    slot: int = 0,
    on_text: Optional[Callable[[str], object]] = None,
) -> str:
    """Generated text after the prompt; on_text gets it piece by piece as it comes."""

class Stream:
    slot: int
    generation: int

class StreamPool:
    """Results of step()/step_sample() are dicts: stream, token_fed, sampled, logits (or None)."""
    capacity: int
    def __init__(self, model: Model) -> None: ...
    def open_count(self) -> int: ...
    def open(self) -> Stream: ...
    def close(self, stream: Stream) -> None: ...
    def reset(self, stream: Stream) -> None: ...
    def fork(self, stream: Stream) -> Stream: ...
    def snapshot(self, stream: Stream) -> bytes: ...
    def restore(self, data: Buffer) -> Stream: ...
    def rollback(self, stream: Stream, steps: int = 1) -> None: ...
    def rollback_available(self, stream: Stream) -> int: ...
    def feed(self, stream: Stream, tokens: Tokens) -> None: ...
    def feed_frames(self, stream: Stream, frames: npt.ArrayLike) -> None: ...
    def pending(self, stream: Stream) -> int: ...
    def set_sampling(self, stream: Stream, temperature: float = 0.0, top_k: int = 0, seed: int = 0) -> None: ...
    def step(self, want_logits: bool = True) -> list[dict]: ...
    def step_sample(self, want_logits: bool = False, feed_back: bool = False) -> list[dict]: ...
    def prefill(self, stream: Stream) -> int: ...

class ListenerEvent:
    stream: int
    command: int
    word: str
    time: float  # seconds from the start of the stream's audio
    score: float

class Listener:
    commands: list[str]
    capacity: int
    model_info: ModelInfo
    open_streams: int
    def __init__(
        self,
        model_dir: Optional[str] = None,
        backend: Literal["auto", "vulkan", "reference", "cpu"] = "auto",
        device: Optional[int] = None,
        max_streams: int = 4,
        threshold: float = 0.0,
        window: int = 0,
        refractory: int = 0,
        frames_per_step: int = 1,  # hops per batched step: more streams keep up, events the same
    ) -> None: ...
    def open_stream(self, sample_rate: int) -> int: ...
    def push(self, stream: int, samples: Union[npt.NDArray[np.int16], npt.NDArray[np.float32]]) -> None: ...
    def finish(self, stream: int) -> None: ...
    def close(self, stream: int) -> None: ...
    def done(self, stream: int) -> bool: ...
    def process(self) -> int: ...
    def poll(self) -> list[ListenerEvent]: ...
