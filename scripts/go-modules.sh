# Sourced by the scripts that build tools from Go modules (daprd, the dapr CLI, tilt,
# compose, the Dockerfile frontend, the cluster's binaries); defines, runs nothing:
#   module_dir <module@version>          the module's directory in Go's module cache
#   copy_module <module@version> <dest>  a writable copy of it to build as the main module
# Many of these modules carry `replace`/`exclude` directives, so `go install mod@v` is
# refused for them; building a copy as the main module works.

module_dir() {
  go mod download -json "$1" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error", "no Dir")))'
}

copy_module() {
  local dir
  # Its own statement: a module the proxy refuses stops here, not at `cp ''`.
  dir=$(module_dir "$1")
  cp -r "$dir" "$2"
  chmod -R u+w "$2"
  # Module zips keep at most vendor/modules.txt: build from modules instead.
  rm -rf "$2/vendor" "$2/go.work" "$2/go.work.sum"
}
