"""Reinforcement-learning pieces that TRL's GRPOTrainer does not provide: reward functions and reward health.

- `rewards`: SEER's verifiable RLVR rewards (format 0/1, accuracy 0/1), in the open-r1 signature TRL calls.
- `health`: watches the rewards of every step; logs zero-variance groups and stops a run that trains on nothing.

The optimisation itself (advantages, clipped loss, KL, checkpoints) is TRL's (see DESIGN §3).
"""
