package api

import (
	"os"
	"runtime"
)

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o600)
}

func runtimeFuncName(pc uintptr) string {
	return runtime.FuncForPC(pc).Name()
}
