#!/bin/sh
# Regenerate the lab's protobuf modules (lab/proto/*_pb2.py) from the .proto files beside this
# script. The .proto files import each other as "lab/proto/<name>.proto", so the generated modules
# import each other as `lab.proto.<name>_pb2` and work from the installed `lab` package.
#
# The generator is pinned on purpose: generated code refuses a protobuf runtime OLDER than the
# protoc that wrote it, so we generate with protoc 26 (grpcio-tools 1.64) and the modules load on
# every runtime from protobuf 5.26 to 7.x (pyproject's `protobuf>=5.26`). A newer generator would
# break users whose other packages hold protobuf at 5.x or 6.x.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
venv=${PROTOGEN_VENV:-${TMPDIR:-/tmp}/ecs-lab-protogen}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "grpcio-tools==1.64.1"
fi
"$venv/bin/python" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. lab/proto/*.proto
echo "regenerated: $(ls lab/proto/*_pb2.py | tr '\n' ' ')"
