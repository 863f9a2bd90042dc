"""Training: `pretrain` (the embedded ShapeWorld UMM from scratch), with its VQ, LM-loss and checkpoint modules."""
