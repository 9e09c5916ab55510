# Sourced by the benchmark scripts (bash): ht_otlp_sink started and awaited
# in one place. Needs from the caller: $SINK (the binary), $TMP (a private
# directory), die(). Uses Debian's /usr/bin/python3 for a free port.

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the sink on two free ports of 127.0.0.1 (gRPC, HTTP) with its stats
# file at $TMP/sink.json, and waits until that file exists (it is first
# written once both ports listen). Sets SINK_PID, SINK_GRPC_PORT, SINK_HTTP_PORT.
# $SINK_PARSE (default wire) is the sink's --parse: wire walks the protobuf
# wire format and counts (cheap), full parses with libprotobuf.
start_otlp_sink() {
  SINK_GRPC_PORT=$(free_port)
  SINK_HTTP_PORT=$(free_port)
  "$SINK" --listen 127.0.0.1 --grpc-port "$SINK_GRPC_PORT" --http-port "$SINK_HTTP_PORT" \
    --stats-file "$TMP/sink.json" --parse "${SINK_PARSE:-wire}" >"$TMP/sink.out" 2>"$TMP/sink.log" &
  SINK_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$TMP/sink.json" ] && return 0
    kill -0 "$SINK_PID" 2>/dev/null || die "ht_otlp_sink exited: $(cat "$TMP/sink.log")"
    sleep 0.1
  done
  die "ht_otlp_sink not ready in 10 s: $(cat "$TMP/sink.log")"
}
