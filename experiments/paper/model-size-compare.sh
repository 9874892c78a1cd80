#!/usr/bin/env bash
# Model size (Rocamonde et al., ICLR 2024, section 4.4), reward side: the four open_clip models of the paper's
# study ranked on one human-labelled humanoid dataset by `vlmrm rewards compare` (EPIC distance, Spearman,
# value order, ROC-AUC, reward-hacking share, images/s, peak memory), at alpha 0, 0.5 and 1.
# The paper: EPIC distance falls with model size. Training with the same models: experiments/paper/model-size.yaml.
# Compute: the ViT-bigG-14 weights are about 10 GB (pip install 'vlmrm[open-clip]'); scoring 400 frames takes
# minutes on a GPU. Labelling is by hand, in the browser (vlmrm dataset label).
set -euo pipefail
data=${1:-data/humanoid}
[ -d "$data" ] || vlmrm dataset collect humanoid --policy random --episodes 20 --every 5 --out "$data"
[ -f "$data/labels.json" ] || vlmrm dataset label "$data" --task kneeling
vlmrm rewards compare "$data" \
    --model open_clip:RN50/openai --model open_clip:ViT-L-14/laion2b_s32b_b82k \
    --model open_clip:ViT-H-14/laion2b_s32b_b79k --model open_clip:ViT-bigG-14/laion2b_s39b_b160k \
    --alpha 0 --alpha 0.5 --alpha 1
