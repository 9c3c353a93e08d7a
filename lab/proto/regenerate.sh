#!/bin/sh
# Regenerate the lab's protobuf modules (lab/proto/*_pb2.py) from the .proto files beside this
# script. The .proto files import each other as "lab/proto/<name>.proto", so the generated modules
# import each other as `lab.proto.<name>_pb2` and work from the installed `lab` package.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. lab/proto/*.proto
echo "regenerated: $(ls lab/proto/*_pb2.py | tr '\n' ' ')"
