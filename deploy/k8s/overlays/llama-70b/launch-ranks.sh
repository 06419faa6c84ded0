#!/usr/bin/env bash
# Leader of a LeaderWorkerSet group: one MPI rank per GPU over the group's pods. trtllm-llmapi-launch runs
# tritonserver on rank 0 (our generator model's TensorRT-LLM LLM API drives the other ranks) and TensorRT-LLM's
# MPI worker loop on ranks 1..N-1. Worker pods only run sshd, which mpirun uses to start their ranks.
# LWS names pods <lws>-<group> (leader) and <lws>-<group>-<i> (workers) under one headless service.
set -euo pipefail
gpus=${GPUS_PER_POD:?} size=${LWS_GROUP_SIZE:?} leader=${LWS_LEADER_ADDRESS:?}
install -d -m 700 ~/.ssh && cp /etc/mpi-ssh/id_ed25519 ~/.ssh/ && chmod 600 ~/.ssh/id_ed25519
printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  Port 2222\n' > ~/.ssh/config
hosts="${leader}:${gpus}"
for i in $(seq 1 $((size - 1))); do
  worker="${leader%%.*}-${i}.${leader#*.}"
  until ssh -o ConnectTimeout=3 "$worker" true; do echo "waiting for $worker"; sleep 5; done
  hosts+=",${worker}:${gpus}"
done
exec mpirun --allow-run-as-root -np $((size * gpus)) --host "$hosts" --map-by slot --bind-to none \
  -x HF_HUB_OFFLINE -x NCCL_DEBUG \
  trtllm-llmapi-launch tritonserver --model-repository=/models --http-port=8000 --grpc-port=8001 \
  --metrics-port=8002 --strict-readiness=true --exit-on-error=true
