"""SeGP-CL itself: losses (ACGD, TSGR), DPGD anchors, prototypes and the dual-path scorer, the teacher's targets, the task state, the ablation switches."""
