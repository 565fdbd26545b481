"""How much of the prototypes' drift does prototype transfer recover? A diagnostic for a finished shapes run.

After the last task, every seen class is scored with the final model's dual path using three prototype sets:

* ``stale``: each class keeps the prototype computed when it was learnt (no transfer at all);
* ``transferred``: what the run keeps (SeGP-CL's drift transfer after every task);
* ``oracle``: the class mean of the final model's raw features over the class's training images. The method
  may not compute it (old images are gone); it is the upper bound transfer aims at.

plus the CLIP path alone. For each set it reports Last (accuracy over every seen class), the forgetting the run
would show with that last row (its earlier rows unchanged), and the mean cosine of old-class prototypes to the
oracle ones.

    python benchmarks/prototype_diagnostic.py outputs/ablation/segp-cl/seed-0 [...]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from segp_hf.data.shapes import render_arrays  # noqa: E402
from segp_hf.hub.inference import load_task  # noqa: E402
from segp_hf.method.prototypes import dual_path_logits  # noqa: E402
from segp_hf.modeling.student import encode_images  # noqa: E402
from segp_hf.run import checkpoints as ckpt  # noqa: E402


@torch.no_grad()
def features(loaded, split: str, classes: list[str]):
    images, labels = render_arrays("shifted", split, classes)
    embeds, raws = [], []
    for start in range(0, len(images), 256):
        pixels = loaded.image_processor(images=[Image.fromarray(a) for a in images[start:start + 256]],
                                        return_tensors="pt")["pixel_values"]
        embed, raw = encode_images(loaded.model, pixels, loaded.raw_feature)
        embeds.append(embed)
        raws.append(raw)
    return torch.cat(embeds), torch.cat(raws), torch.as_tensor(labels)


def diagnose(run_dir: Path) -> dict:
    final = ckpt.completed_tasks(run_dir) - 1
    loaded = load_task(str(run_dir), final)
    classes = loaded.class_names
    per_task = len(classes) // (final + 1)
    test_embeds, test_raw, test_labels = features(loaded, "test", classes)
    _, train_raw, train_labels = features(loaded, "train", classes)

    oracle = torch.stack([train_raw[train_labels == c].mean(dim=0) for c in range(len(classes))])
    stale = torch.stack([ckpt.load_prototypes(ckpt.task_dir(run_dir, c // per_task))[c] for c in range(len(classes))])
    sets = {"stale": stale, "transferred": loaded.prototypes[: len(classes)].float(), "oracle": oracle}
    text = loaded.text_embeddings()
    old = torch.arange(len(classes)) < final * per_task

    earlier_rows = json.loads((run_dir / "results.json").read_text())["acc_matrix"][:final]
    best_before = [max(row[j] for row in earlier_rows[j:]) for j in range(final)]

    def scores(prototypes, beta):
        logits = dual_path_logits(test_embeds, text, test_raw, prototypes, loaded.logit_scale, beta)
        correct = (logits.argmax(dim=-1) == test_labels).float()
        row = [100.0 * correct[test_labels // per_task == j].mean().item() for j in range(final + 1)]
        # the run's own earlier rows with this last row: the forgetting these prototypes would give
        forgetting = sum(b - r for b, r in zip(best_before, row)) / final
        return {"last": 100.0 * correct.mean().item(), "forgetting": forgetting, "last_row": row}

    report = {"run": str(run_dir), "task": final, "clip_path_only": scores(None, 0.0)["last"]}
    for name, prototypes in sets.items():
        cosine = F.cosine_similarity(prototypes[old], oracle[old], dim=-1).mean().item()
        report[name] = {**scores(prototypes, loaded.beta), "old_class_cosine_to_oracle": cosine}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="output dirs of finished runs with prototypes")
    args = parser.parse_args()
    for run in args.runs:
        print(json.dumps(diagnose(run), indent=1))


if __name__ == "__main__":
    main()
