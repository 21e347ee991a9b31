#!/usr/bin/env bash
# The sweeps behind each family's default recipe (docs/experiments.md): one Hydra multirun over
# two seeds per setting, on the 3-epoch MNIST budget, every job scored by its own end-of-run
# evaluation (10000 samples against the 10000 test images). Runs are serialised with flock,
# so timings are not shared with another benchmark.
#
#   VAEGAN_DATA_DIR=../shared/data bash scripts/recipe_sweeps.sh [SETTING ...]   # default: all
#   python scripts/summarize_runs.py outputs/recipes                              # the table
#
# OUT (default outputs/recipes) holds OUT/<setting>/seed=<n>/ (job0 when SEEDS is one seed);
# SEEDS (default 0,1) the seeds.
# Rerunning continues: with resume=auto a finished job is neither trained nor evaluated again.
# Each setting names what it changes against the defaults of its time, so that it still means
# the same run after a default moves (the GAN's EMA, the VAE's latent size and prior, the AAE's latent size, the learning rates of
# the GAN, AAE, BiGAN and VAE-GAN, the VAE-GAN's gamma).
set -euo pipefail
OUT=${OUT:-outputs/recipes}
LOCK=${LOCK:-/tmp/vaegan-bench.lock}
TRAIN=${TRAIN:-vaegan-train}
SEEDS=${SEEDS:-0,1}
COMMON=(dataset=mnist trainer.max_epochs=3 "seed=$SEEDS" log.progress_bar=false resume=auto
        "eval.final_metrics=[domain_fid,classifier_score,class_coverage,precision_recall,diversity,neg_elbo,iwae,recon_mse]")

declare -A SETTINGS=(  # name -> overrides; the old defaults are the *-old settings
  [vae-old]="model=vae dataset.binarize=true optimizer.lr=2e-4 optimizer.betas=[0.5,0.999] model.latent_dim=16 model.prior=gaussian"
  [vae-lr1e-3-b0.9]="model=vae dataset.binarize=true optimizer.lr=1e-3 optimizer.betas=[0.9,0.999] model.latent_dim=16 model.prior=gaussian"
  [vae-lr2e-3-b0.9]="model=vae dataset.binarize=true optimizer.lr=2e-3 optimizer.betas=[0.9,0.999] model.latent_dim=16 model.prior=gaussian"
  [gan-old]="model=gan optimizer.lr=2e-4 model.ema.enabled=true"
  [gan-ttur]="model=gan optimizer.lr=2e-4 optimizer.discriminator.lr=4e-4 model.ema.enabled=true"
  [gan-hinge-ttur]="model=gan optimizer.lr=2e-4 model.loss=hinge optimizer.discriminator.lr=4e-4 model.ema.enabled=true"
  [aae-old]="model=aae optimizer.lr=2e-4 model.latent_dim=8"
  [aae-lr1e-3-b0.9]="model=aae model.latent_dim=8 optimizer.lr=1e-3 optimizer.betas=[0.9,0.999]"
  [vae-lr2e-3-z8]="model=vae dataset.binarize=true optimizer.lr=2e-3 optimizer.betas=[0.9,0.999] model.latent_dim=8 model.prior=gaussian"
  [vae-lr3e-3-b0.9]="model=vae dataset.binarize=true optimizer.lr=3e-3 optimizer.betas=[0.9,0.999] model.latent_dim=16 model.prior=gaussian"
  [vae-lr2e-3-z32]="model=vae dataset.binarize=true optimizer.lr=2e-3 optimizer.betas=[0.9,0.999] model.latent_dim=32 model.prior=gaussian"
  [gan-sn]="model=gan optimizer.lr=2e-4 model.discriminator.spectral_norm=true model.ema.enabled=true"
  [aae-adv5]="model=aae optimizer.lr=2e-4 model.latent_dim=8 model.adversarial_weight=5"
  [vae-lr5e-3-b0.9]="model=vae dataset.binarize=true optimizer.lr=5e-3 optimizer.betas=[0.9,0.999] model.latent_dim=16 model.prior=gaussian"
  [gan-sn-ttur]="model=gan optimizer.lr=2e-4 model.discriminator.spectral_norm=true optimizer.discriminator.lr=4e-4 model.ema.enabled=true"
  [bigan-old]="model=bigan optimizer.lr=2e-4"
  [vaegan-old]="model=vaegan model.gamma=0.1 optimizer.lr=2e-4"
  [gan-noema]="model=gan optimizer.lr=2e-4 model.ema.enabled=false"
  [gan-ema0.99]="model=gan optimizer.lr=2e-4 model.ema.enabled=true model.ema.decay=0.99"
  [gan-bs32]="model=gan optimizer.lr=2e-4 model.ema.enabled=false trainer.batch_size=32"
  [aae-z16]="model=aae optimizer.lr=2e-4 model.latent_dim=16"
  [vae-bs32]="model=vae dataset.binarize=true trainer.batch_size=32 model.latent_dim=16 model.prior=gaussian"
  [gan-w96]="model=gan optimizer.lr=2e-4 model.ema.enabled=false model.net.width=96"
  [gan-w128]="model=gan optimizer.lr=2e-4 model.ema.enabled=false model.net.width=128"
  [gan-info10]="model=gan optimizer.lr=2e-4 model.ema.enabled=false model.info_codes=10"
  [vae-mix10]="model=vae dataset.binarize=true model.latent_dim=32 model.prior=mixture model.prior_components=10"
  [vae-mix50]="model=vae dataset.binarize=true model.latent_dim=32 model.prior=mixture model.prior_components=50"
  [vae-mix200]="model=vae dataset.binarize=true model.latent_dim=32 model.prior=mixture model.prior_components=200"
  [vae-mix500]="model=vae dataset.binarize=true model.latent_dim=32 model.prior=mixture model.prior_components=500"
  [vaegan-mix10]="model=vaegan model.gamma=0.1 optimizer.lr=2e-4 model.prior=mixture model.prior_components=10"
  [aae-z32]="model=aae optimizer.lr=2e-4 model.latent_dim=32"
  [aae-z16-gauss]="model=aae optimizer.lr=2e-4 model.latent_dim=16 model.encoder_type=gaussian"
  [aae-z16-adv50]="model=aae optimizer.lr=2e-4 model.latent_dim=16 model.adversarial_weight=50"
  [aae-z16-adv10]="model=aae optimizer.lr=2e-4 model.latent_dim=16 model.adversarial_weight=10"
  [aae-z16-lr4e-4]="model=aae model.latent_dim=16 optimizer.lr=4e-4"
  [gan-lr4e-4]="model=gan model.ema.enabled=false optimizer.lr=4e-4"
  [gan-lr8e-4]="model=gan model.ema.enabled=false optimizer.lr=8e-4"
  [bigan-lr4e-4]="model=bigan optimizer.lr=4e-4"
  [vaegan-lr4e-4]="model=vaegan model.gamma=0.1 optimizer.lr=4e-4"
  [vaegan-lr8e-4]="model=vaegan model.gamma=0.1 optimizer.lr=8e-4"
  [vaegan-lr1.6e-3]="model=vaegan model.gamma=0.1 optimizer.lr=1.6e-3"
  [vaegan-lr8e-4-nosn]="model=vaegan model.gamma=0.1 optimizer.lr=8e-4 model.discriminator.spectral_norm=false"
  [vaegan-lr3.2e-3]="model=vaegan model.gamma=0.1 optimizer.lr=3.2e-3"
  [vaegan-lr1.6e-3-nosn]="model=vaegan model.gamma=0.1 optimizer.lr=1.6e-3 model.discriminator.spectral_norm=false"
  [vaegan-lr1.6e-3-g0.3]="model=vaegan optimizer.lr=1.6e-3 model.gamma=0.3"
  [vaegan-lr1.6e-3-g0.03]="model=vaegan optimizer.lr=1.6e-3 model.gamma=0.03"
  [vaegan-lr1.6e-3-g0.01]="model=vaegan optimizer.lr=1.6e-3 model.gamma=0.01"
  [vaegan-lr1.6e-3-z64]="model=vaegan model.gamma=0.1 optimizer.lr=1.6e-3 model.latent_dim=64"
  [gan-lr1.6e-3]="model=gan model.ema.enabled=false optimizer.lr=1.6e-3"
  [gan-lr3.2e-3]="model=gan model.ema.enabled=false optimizer.lr=3.2e-3"
  [gan-lr6.4e-3]="model=gan model.ema.enabled=false optimizer.lr=6.4e-3"
  [aae-z16-lr8e-4]="model=aae model.latent_dim=16 optimizer.lr=8e-4"
  [aae-z16-lr1.6e-3]="model=aae model.latent_dim=16 optimizer.lr=1.6e-3"
  [bigan-lr8e-4]="model=bigan optimizer.lr=8e-4"
  [bigan-lr1.6e-3]="model=bigan optimizer.lr=1.6e-3"
  [bigan-lr3.2e-3]="model=bigan optimizer.lr=3.2e-3"
  [vae-beta0.5]="model=vae dataset.binarize=true model.latent_dim=32 model.prior=mixture model.prior_components=500 model.beta=0.5"
  [vae-beta0.25]="model=vae dataset.binarize=true model.latent_dim=32 model.prior=mixture model.prior_components=500 model.beta=0.25"
)
ORDER=(vae-old vae-lr1e-3-b0.9 gan-old gan-ttur aae-old aae-lr1e-3-b0.9 vae-lr2e-3-b0.9 gan-hinge-ttur
       vae-lr2e-3-z8 vae-lr3e-3-b0.9 gan-sn aae-adv5 vae-lr2e-3-z32 bigan-old vaegan-old vae-lr5e-3-b0.9
       gan-sn-ttur gan-noema aae-z16 vae-bs32 gan-ema0.99 gan-bs32
       gan-w96 gan-w128 gan-info10 vae-mix10 vae-mix50 vae-mix200 vae-mix500 vaegan-mix10
       aae-z32 aae-z16-gauss aae-z16-adv50 aae-z16-adv10 aae-z16-lr4e-4 gan-lr4e-4 gan-lr8e-4 bigan-lr4e-4 vaegan-lr4e-4
       vaegan-lr8e-4 vaegan-lr1.6e-3 vaegan-lr8e-4-nosn vaegan-lr3.2e-3 vaegan-lr1.6e-3-nosn vaegan-lr1.6e-3-g0.3 vaegan-lr1.6e-3-g0.03 vaegan-lr1.6e-3-g0.01
       vaegan-lr1.6e-3-z64 gan-lr1.6e-3 gan-lr3.2e-3 gan-lr6.4e-3 aae-z16-lr8e-4 aae-z16-lr1.6e-3 bigan-lr8e-4 bigan-lr1.6e-3 bigan-lr3.2e-3
       vae-beta0.5 vae-beta0.25)

for name in "${@:-${ORDER[@]}}"; do
  [ -n "${SETTINGS[$name]:-}" ] || { echo "unknown setting $name; known: ${ORDER[*]}" >&2; exit 2; }
  echo "== $name: ${SETTINGS[$name]}"
  # shellcheck disable=SC2086  # the overrides are words
  flock "$LOCK" $TRAIN -m "hydra.sweep.dir=$OUT/$name" "${COMMON[@]}" ${SETTINGS[$name]}
done
