"""Every backend satisfies the `UnifiedModel` protocol, and backends are found by name."""

import pytest
import torch

from seer.errors import SeerError
from seer.models import BACKENDS, UnifiedModel, backend_class, load_backend
from seer.models.janus import JanusUMM

# The protocol's public members, read from the class itself so that a new member is checked too.
MEMBERS = sorted(name for name in vars(UnifiedModel) if not name.startswith("_"))


def test_protocol_members_are_the_documented_verbs():
    verbs = {"generate_text", "generate_images", "token_logprobs", "module", "use_adapter", "no_adapter"}
    assert verbs <= set(MEMBERS)
    for name in MEMBERS:  # backends implement against these docstrings
        member = vars(UnifiedModel)[name]
        assert (member.fget if isinstance(member, property) else member).__doc__, name


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_class_provides_every_member(name):
    cls = backend_class(name)
    assert [m for m in MEMBERS if not hasattr(cls, m)] == []


def test_janus_instance_is_a_unified_model():
    umm = load_backend("janus", shape="shapeworld-tiny", seed=0)
    assert isinstance(umm, JanusUMM)
    assert isinstance(umm, UnifiedModel)
    assert isinstance(umm.module, torch.nn.Module)


def test_an_incomplete_object_is_not_a_unified_model():
    # Guards the test above: the runtime check really looks at the members.
    class TextOnly:
        pass

    def stub(*args, **kwargs):
        return None

    for name in MEMBERS:
        if name != "generate_images":
            setattr(TextOnly, name, stub)
    assert not isinstance(TextOnly(), UnifiedModel)
    TextOnly.generate_images = stub
    assert isinstance(TextOnly(), UnifiedModel)


def test_load_backend_from_a_directory(tmp_path):
    JanusUMM.from_shape(seed=0).save_pretrained(tmp_path / "ckpt")
    loaded = load_backend("janus", path=str(tmp_path / "ckpt"))
    assert isinstance(loaded, UnifiedModel) and loaded.num_image_tokens == 64


def test_unknown_backend_is_a_seer_error():
    with pytest.raises(SeerError, match="backend 'chameleon': expected one of \\['harmon', 'janus'\\]"):
        load_backend("chameleon")


def test_plain_cuda_is_each_processes_own_gpu_under_accelerate(monkeypatch):
    """`load_umm(..., device="cuda")` in DDP: rank r loads onto cuda:r, not all ranks onto GPU 0."""
    import accelerate

    from seer.models import process_device

    class State:
        def __init__(self, num_processes, local_process_index):
            self.num_processes, self.local_process_index = num_processes, local_process_index

    monkeypatch.setattr(accelerate, "PartialState", lambda cpu: State(2, 1))
    assert process_device("cuda") == "cuda:1"
    assert process_device("cuda:0") == "cuda:0" and process_device("cpu") == "cpu"  # explicit devices are kept
    monkeypatch.setattr(accelerate, "PartialState", lambda cpu: State(1, 0))
    assert process_device("cuda") == "cuda"
