"""The method variants and which parts of SeGP-CL each one switches on (the ablation ladder)."""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = (
    "zero-shot",
    "lora",
    "lwf",
    "lora+acgd",
    "lora+acgd+tsgr",
    "lora+acgd+tsgr+proto",
    "segp-cl",
    "segp-cl-onlyclip",
    "rapf",  # the paper's competitors in the same harness (docs/variants.md)
    "mg-clip",
)
COMPETITORS = ("rapf", "mg-clip")  # their own trainer, state and scorer: segp_hf/variants/


@dataclass(frozen=True)
class MethodSwitches:
    """Which parts of SeGP-CL a variant uses."""

    train: bool = True
    # The distillation term weighted by lambda_acgd, and what it distils on: 'anchors' (ACGD on the DPGD
    # anchor set), 'new_images' (LwF: the teacher's logits on the current task's images) or None (no term).
    distillation: str | None = "anchors"
    tsgr: bool = True
    prototypes: bool = True  # compute, transfer and use them (DPGD visual term, dual path)
    dpgd_visual: bool = True
    beta_enabled: bool = True


_SWITCHES = {
    "zero-shot": MethodSwitches(train=False, distillation=None, tsgr=False, prototypes=False, dpgd_visual=False,
                                beta_enabled=False),
    "lora": MethodSwitches(distillation=None, tsgr=False, prototypes=False, dpgd_visual=False, beta_enabled=False),
    "lwf": MethodSwitches(distillation="new_images", tsgr=False, prototypes=False, dpgd_visual=False,
                          beta_enabled=False),
    "lora+acgd": MethodSwitches(tsgr=False, prototypes=False, dpgd_visual=False, beta_enabled=False),
    "lora+acgd+tsgr": MethodSwitches(prototypes=False, dpgd_visual=False, beta_enabled=False),
    "lora+acgd+tsgr+proto": MethodSwitches(dpgd_visual=False),
    "segp-cl": MethodSwitches(),
    "segp-cl-onlyclip": MethodSwitches(beta_enabled=False),
    # none of SeGP-CL's parts: no distillation, TSGR, anchors or prototypes (their own method in segp_hf/variants/)
    "rapf": MethodSwitches(distillation=None, tsgr=False, prototypes=False, dpgd_visual=False, beta_enabled=False),
    "mg-clip": MethodSwitches(distillation=None, tsgr=False, prototypes=False, dpgd_visual=False, beta_enabled=False),
}


def method_switches(variant: str) -> MethodSwitches:
    return _SWITCHES[variant]
