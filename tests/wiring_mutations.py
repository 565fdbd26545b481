"""Break one wiring decision at a time, run the tests meant to catch it, and report CAUGHT or MISSED.

    python tests/wiring_mutations.py [name-fragment ...]

Each mutation is a one-line source edit (restored afterwards, also on Ctrl-C). Every one must be CAUGHT;
a MISSED line means a test that cannot fail. Not collected by pytest (it takes minutes)."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUTATIONS = [
    ("trainer parallel check removed", "segp_hf/trainer.py", "        check_trainer_parallelism(self)\n", "", "test_parallel_modes.py"),
    ("runner parallel check removed", "segp_hf/continual.py", "        check_parallel_mode(config)  # before", "        pass  # before", "test_parallel_modes.py"),
    ("global batch ignored", "segp_hf/config.py", "    apply_global_batch(config)\n", "", "test_parallel_modes.py"),
    ("bf16 prediction head", "segp_hf/evaluation.py", "with float32_heads(raw_feats.device):\n        if not beta", "if True:\n        if not beta", "bf16"),
    ("bf16 loss head", "segp_hf/trainer.py", "with float32_heads(pixel_values.device):\n            loss, terms", "if True:\n            loss, terms", "bf16"),
    ("towers not cast to float32", "segp_hf/modeling.py", "projected = clip.visual_projection(pooled).float()", "projected = clip.visual_projection(pooled)", "float32_under"),
    ("acgd weight ignored", "segp_hf/trainer.py", "loss = loss + args.lambda_acgd * acgd", "loss = loss + acgd", "test_returned_loss"),
    ("tsgr weight ignored", "segp_hf/trainer.py", "loss = loss + args.lambda_tsgr * tsgr", "loss = loss + tsgr", "test_returned_loss"),
    ("acgd text detached", "segp_hf/trainer.py", "student = state.logit_scale * anchor_embeds @ old_text.T", "student = state.logit_scale * anchor_embeds @ old_text.detach().T", "test_acgd_gradient"),
    ("same anchors each step", "segp_hf/trainer.py", "* 1_000_003 + step) * 1_024", "* 1_000_003 + 0) * 1_024", "anchor"),
    ("dpgd prototype term dropped", "segp_hf/anchors.py", "lambda_visual=args.dpgd_lambda_visual if use_visual else 0.0", "lambda_visual=0.0", "dpgd_visual_term_changes"),
    ("ce over seen by default", "segp_hf/arguments.py", 'cls_classes: str = field(default="current"', 'cls_classes: str = field(default="seen"', "test_ce_runs or test_returned_loss"),
    ("ce current branch uses seen", "segp_hf/trainer.py", "loss_cls = F.cross_entropy(logits[:, start:end], labels - start)", "loss_cls = F.cross_entropy(logits, labels)", "test_ce_runs or test_returned_loss"),
    ("no drift transfer", "segp_hf/prototypes.py", "    if start > 0 and task_state.anchors is not None and task_state.prototypes is not None:\n", "    if False:\n", "drift_transfer"),
    ("onlyclip scores with prototypes", "segp_hf/evaluation.py", "return float(beta) if switches.beta_enabled else 0.0", "return float(beta)", "test_evaluation.py"),
    ("scorer casts prototypes down", "segp_hf/evaluation.py", "prototypes.to(raw_feats.device), logit_scale, beta)", "prototypes.to(raw_feats), logit_scale, beta)", "test_evaluation.py"),
    ("future task scored over seen only", "segp_hf/evaluation.py", "return seen if other <= task else", "return seen if True else", "test_evaluation.py"),
    ("til round dropped", "segp_hf/evaluation.py", "        if other <= task and task_incremental:\n            classes", "        if False:\n            classes", "test_continual.py"),
    ("lora_A not re-frozen", "segp_hf/modeling.py", "        yield model\n    train_only_lora_B(peft_model)", "        yield model\n", "lora_A_and_base"),
    ("momentum off", "segp_hf/arguments.py", 'default="momentum=0.9"', 'default="momentum=0.0"', "sgd_momentum"),
    ("linear schedule", "segp_hf/arguments.py", 'lr_scheduler_type: str = field(default="cosine"', 'lr_scheduler_type: str = field(default="linear"', "sgd_momentum"),
    ("clipping at 1.0", "segp_hf/arguments.py", "        default=0.0,\n        metadata={\"help\": \"Gradient clipping", "        default=1.0,\n        metadata={\"help\": \"Gradient clipping", "clipping"),
    ("q_proj targets", "segp_hf/modeling.py", 'target_modules=list(target_modules),', 'target_modules=list(target_modules) + ["q_proj"],', "3_44m"),
]
only = sys.argv[1:]
for name, path, old, new, tests in MUTATIONS:
    if only and not any(o in name for o in only):
        continue
    full = os.path.join(ROOT, path)
    text = open(full).read()
    assert old in text, (name, old)
    shutil.copy(full, full + ".bak")
    open(full, "w").write(text.replace(old, new, 1))
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", *(["tests/test_wiring.py"] if not tests.endswith(".py") else ["tests/" + tests]), "-q", "-p", "no:warnings", *(["-k", tests] if not tests.endswith(".py") else [])],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-200:]
        print(f"{'CAUGHT' if r.returncode else 'MISSED'}  {name}: {last}", flush=True)
    finally:
        shutil.move(full + ".bak", full)
