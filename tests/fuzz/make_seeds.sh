#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Writes the seed corpora of the RPC, HTTP, config targets (tests/fuzz/
# corpus/{frame,envelope,http,daemon,worker,check,train_config,sched_config}) from
# the protobuf text below, with Debian's protoc. Seeds are committed; run
# this again after a .proto or a method table changes. Crash inputs that
# libFuzzer found are kept beside them (regress_*) and never regenerated.
#   tests/fuzz/make_seeds.sh [ROOT]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
c=tests/fuzz/corpus
enc() { # enc PROTO_FILE MESSAGE TEXT > bytes
  printf '%s\n' "$3" | protoc --encode="$2" --proto_path="$(dirname "$1")" "$1"
}
req() { enc proto/trainyard.proto "trainyard.$1" "$2"; }
# A method index (its line in daemon/convert_check.c or worker/convert.c)
# as the first byte, then the payload.
seed() { # seed DIR NAME INDEX MESSAGE TEXT
  mkdir -p "$c/$1"
  { printf "\\x$(printf %02x "$3")"; req "$4" "$5"; } > "$c/$1/$2"
}

seed daemon submit_command 0 SubmitJobRequest 'job { name: "hi" user: "alice" resources { nodes: 2 tasks_per_node: 2 cpus_per_task: 1 } command { argv: "sh" argv: "-c" argv: "echo $RANK" env: "A=1" cwd: "/tmp" } } request_id: "0123456789abcdef0123456789abcdef"'
seed daemon submit_graph 0 SubmitJobRequest 'job { name: "g" graph { model_path: "/m.onnx" train_config: "\x08\x40" } interactive { pty: true } warn_signal: 10 warn_before_s: 30 }'
seed daemon list_jobs 1 ListJobsRequest 'states: JOB_PENDING states: JOB_RUNNING user: "alice" queue: "default" limit: 10'
seed daemon get_job 2 GetJobRequest 'job_id: 7'
seed daemon cancel 3 CancelJobRequest 'job_ids: 1 job_ids: 2 job_ids: 99 user: "alice"'
seed daemon list_nodes 4 ListNodesRequest ''
seed daemon locations 5 GetTaskLocationsRequest 'job_id: 3 want_tokens: true user: "bob"'
seed daemon register 6 RegisterNodeRequest 'node { name: "n1" cpus: 8 memory: 1000000 gpus { index: 0 name: "H100" memory: 80 uuid: "GPU-1" nvlink_island: 0 } io_addr: "127.0.0.1:7820" topology: "1 package" } tasks { job_id: 4 rank: 0 state: TASK_RUNNING } tasks { job_id: 5 rank: 1 state: TASK_EXITED exit_code: 3 reason: "x" }'
seed daemon heartbeat 7 HeartbeatRequest 'node: "n1" running_tasks: 2'
seed daemon task_update 8 TaskUpdateRequest 'job_id: 4 rank: 0 state: TASK_SIGNALED term_signal: 9 timed_out: true'
seed daemon list_queues 9 ListQueuesRequest ''
seed daemon update_queue 10 UpdateQueueRequest 'name: "gpu" settings: "tier=2" settings: "share=0.5" settings: "max_time=2h"'
seed daemon update_node 11 UpdateNodeRequest 'name: "n1"'
seed daemon update_job 12 UpdateJobRequest 'job_id: 9'
seed daemon explain 13 ExplainJobRequest 'job_id: 9'
seed daemon shares 14 GetSharesRequest ''
seed daemon rdv_put 15 RendezvousPutRequest 'job_id: 2 key: "mpi/port/0" value: "tag#0$tcp"'
seed daemon rdv_get 16 RendezvousGetRequest 'job_id: 2 key: "mpi/port/0"'
seed daemon progress 17 ReportProgressRequest 'job_id: 2 rank: 0'
seed daemon plan_job 18 PlanJobRequest 'job { name: "g" resources { nodes: 2 tasks_per_node: 2 } graph { model_path: "/m.onnx" train_config: "\x08\x40" parallelism: PARALLELISM_TENSOR } }'
seed daemon history 19 GetHistoryRequest 'user: "alice" since_ms: 1700000000000 states: JOB_FAILED queue: "default" limit: 50 job_ids: 12 ranks: true names: "train" nodes: "n1" before_end_ms: 9223372036854775807 before_id: 40'
seed daemon get_node 20 GetNodeRequest 'name: "n1" limit: 10'
seed daemon watch 21 WatchJobRequest 'job_id: 4 want_tokens: true timing: true'
seed daemon web_token 22 WebTokenRequest 'ttl_s: 3600 revoke: false'
seed daemon reconfigure 23 ReconfigureRequest ''
seed daemon admin_events 24 ListAdminEventsRequest 'kind: "queue" since_ms: 1700000000000 limit: 100'

seed worker launch 0 LaunchTaskRequest 'job_id: 1 rank: 1 local_rank: 0 world_size: 2 local_world_size: 1 master_addr: "10.0.0.1" master_port: 29501 gpu_indices: 0 gpu_indices: 3 cpus: 2 command { argv: "python" argv: "train.py" env: "X=1" } time_limit_s: 60 kill_grace_s: 5 user: "alice"'
seed worker kill 1 KillTaskRequest 'job_id: 1 signal: 15 grace_s: 3'
seed worker read_log 2 ReadLogRequest 'job_id: 1 rank: 0 offset: 100 follow: true'
seed worker attach 3 AttachRequest 'job_id: 1 rank: 0 owner: true replay: true'
seed worker attach_input 4 AttachInputRequest 'job_id: 1 rank: 0 data: "ls\n" eof: true rows: 24 cols: 80'
seed worker set_limit 5 SetTaskLimitRequest 'job_id: 1 time_limit_s: 60'

# The model check: byte 0 even is traind's request to its child, odd the
# child's answer.
seed check request 0 GraphCheckRequest 'job { name: "g" user: "alice" resources { nodes: 2 tasks_per_node: 2 } graph { model_path: "/m.onnx" train_config: "\x08\x40" } } want_plan: true mode: PARALLELISM_AUTO cluster { nodes: 2 devices_per_node: 2 device_flops: 1e11 device_mem_bytes: 17179869184 intra_bw: 1e10 inter_bw: 1.25e9 intra_latency_s: 2e-6 inter_latency_s: 2e-5 launch_s: 5e-6 threads: 1 }'
seed check answer_checked 1 GraphCheckResponse 'stage: 1 cache_key: 81985529216486895 device_flops: 1e11'
seed check answer_refused 1 GraphCheckResponse 'stage: 1 status: -10001 message: "job.graph.model_path: initializer w: raw_data holds 8 bytes, its shape needs 16"'
seed check answer_plan 1 GraphCheckResponse 'stage: 2 plan: "TYPLAN1\x00\x01\x02"'

mkdir -p "$c/envelope" "$c/frame"
envelope() { enc lib/rpc/envelope.proto tyrpc.Envelope "$1"; }
envelope 'version: 1 request_id: 7 kind: REQUEST method: "SubmitJob" credential: "TYT1..." payload: "\x0a\x02\x0a\x00"' > "$c/envelope/request"
envelope 'version: 1 request_id: 7 kind: RESPONSE status: -10001 message: "job.command.argv: must not be empty"' > "$c/envelope/response"
envelope 'version: 1 request_id: 9 kind: STREAM payload: "chunk"' > "$c/envelope/stream"
envelope 'version: 2 request_id: 1 kind: CANCEL' > "$c/envelope/cancel_v2"
# Frames: byte 0 picks the maximum frame size, byte 1 the chunk size.
framed() { # a 4-byte big-endian length, then the bytes of a file
  local n; n=$(stat -c %s "$1")
  printf "\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))"
  cat "$1"
}
{ printf '\x06\x03'; framed "$c/envelope/request"; framed "$c/envelope/response"; framed "$c/envelope/stream"; } > "$c/frame/three_frames"
{ printf '\x02\x40'; framed "$c/envelope/request"; } > "$c/frame/oversize_for_its_max"
{ printf '\x0a\xff\x7f\xff\xff\xff'; } > "$c/frame/huge_header"
{ printf '\x0a\x00\x00\x00\x00\x00'; } > "$c/frame/zero_length"

mkdir -p "$c/http"
printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:7811\r\nUser-Agent: Prometheus/2.42.0\r\nAccept: text/plain;version=0.0.4\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n' > "$c/http/prometheus"
printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nHEAD /metrics?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' > "$c/http/pipelined"
printf '\r\n\r\nGET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' > "$c/http/http10_leading_blank_lines"
printf 'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello' > "$c/http/post_with_body"
printf 'GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' > "$c/http/transfer_encoding"
printf 'GET /metrics HTTP/1.1\nHost: x\n\n' > "$c/http/bare_lf"

mkdir -p "$c/train_config"
for f in examples/models/*.config.txtpb; do
  grep -v '^#' "$f" | protoc --encode=trainyard.TrainConfig --proto_path=proto proto/train_config.proto \
    > "$c/train_config/$(basename "$f" .config.txtpb)"
done

mkdir -p "$c/sched_config"
sed -n '/^```ini$/,/^```$/p' README.md | sed '1d;$d' > "$c/sched_config/readme_example"
printf 'weight.age = x\n' > "$c/sched_config/bad_number"
printf 'switch.a = n1, n2\nswitch.b = n2\npreemption = maybe\n' > "$c/sched_config/node_in_two_switches"
printf '# only a comment\n\n   \nbackfill.depth = 4294967296\n' > "$c/sched_config/overflow"
echo "seeds written under $c"
