#!/usr/bin/env bash
# A shared-consumer worker in shell: worker.sh [URL] [CONSUMER] [WORKER]
set -o pipefail
U=${1:-http://localhost:7432}/api/consumers/${2:-mailer}; W=${3:-sh-$$}
while :; do
  curl -sf "$U/claim" -H 'content-type: application/json' \
      -d "{\"worker\": \"$W\", \"max\": 10, \"wait\": 30}" | jq -c '.claims[]' |
  while read -r claim; do
    echo "$claim" | jq -c '[.offset, .event.key, .event.data]'   # the work
    id=$(echo "$claim" | jq -r .id)
    curl -sf "$U/ack" -H 'content-type: application/json' \
        -d "{\"worker\": \"$W\", \"claims\": [\"$id\"]}" > /dev/null || exit 1
  done || sleep 1   # server unreachable or a claim refused: ask again
done
