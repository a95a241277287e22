#!/usr/bin/env bash
# The Russian scoreboard on a GPU machine: the six RuCLIP checkpoints (and, with --peers, the two
# peers the published tables are most often read against) on the shared Russian benchmarks and the
# RuCLIP README's torchvision datasets, one table at OUT/scoreboard.md.
#
#   pip install 'ruclip[eval-peers]'
#   benchmarks/scoreboard.sh DATA OUT              # RuCLIP only
#   benchmarks/scoreboard.sh DATA OUT --peers      # and SigLIP 2 B/16, XLM-R B/32 (open_clip)
#
# DATA holds one folder per benchmark (docs/scoreboard.md: what each holds). Everything that can be
# downloaded is (--download): XM3600 (captions + 3600 images), its Hub parquet, XTD10, COCO-SM's
# translations and COCO val2014 (6 GB), Babel-ImageNet's labels and prompts, and the torchvision
# datasets. ImageNet cannot be: put ILSVRC2012_devkit_t12.tar.gz and ILSVRC2012_img_val.tar (or the
# extracted val/ and meta.bin) in DATA/imagenet first, and the same folder serves imagenet1k.
#
# Resumable: run it again after an interruption. Finished (model, benchmark) results are read back
# from OUT/<model>/<benchmark>.json, and image latents from OUT/feature-cache. Exit code 3 when a
# benchmark could not be scored (each is named on stderr); the table then has the rest.
set -euo pipefail

DATA=${1:?usage: benchmarks/scoreboard.sh DATA OUT [--peers]}
OUT=${2:?usage: benchmarks/scoreboard.sh DATA OUT [--peers]}
MODELS=(ruclip-vit-base-patch32-224 ruclip-vit-base-patch16-224 ruclip-vit-large-patch14-224
        ruclip-vit-base-patch32-384 ruclip-vit-large-patch14-336 ruclip-vit-base-patch16-384)
if [[ "${3:-}" == "--peers" ]]; then
  MODELS+=(open_clip:ViT-B-16-SigLIP2@webli open_clip:xlm-roberta-base-ViT-B-32@laion5b_s13b_b90k)
fi
BENCHMARKS=(xm3600-immich xm3600-mteb xtd10 coco-sm babel-imagenet babel-imagenet-label
            cifar10 cifar100 imagenet1k food101 sun397 cars fgvc_aircraft dtd pets caltech101 flowers102
            stl10 mnist pcam renderedsst2 clevr_count)
mkdir -p "$OUT"
ruclip eval scoreboard --models "${MODELS[@]}" --benchmarks "${BENCHMARKS[@]}" \
  --data-root "$DATA" --root "imagenet1k=$DATA/imagenet" --out-dir "$OUT" --download \
  --feature-cache "$OUT/feature-cache" --device cuda --backend torch --dtype fp32 --batch-size 256
