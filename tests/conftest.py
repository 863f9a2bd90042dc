"""Shared test set-up: every test runs torch on one thread.

The models under test are tiny: a second thread buys nothing, and on a busy 2-core machine (CI, or several
jobs at once) two threads contend and run many times slower.
"""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_janus():
    """A factory of small random-weight Janus models: the real backend's plumbing at a fraction of the cost of the
    shapeworld-tiny shape, with the embedded world's vocabulary."""
    from seer.models.janus import JanusShape, JanusUMM
    from seer.worlds.shapeworld.corpus import corpus_words

    shape = JanusShape(
        hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, vocab_size=None, max_position_embeddings=512,
        image_size=32, patch_size=4,
        vision=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2.0),
        vq=dict(embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32, channel_multiplier=[1, 1, 2],
                num_res_blocks=1),
    )  # fmt: skip
    return lambda: JanusUMM.from_shape(shape, seed=0, words=corpus_words())
