#!/usr/bin/env bash
# Builds examples/java with Maven and a JDK >= 21 (class files for Java 21:
# maven.compiler.release), into the project-local Maven repository .m2/.
# Offline when .m2/ already holds everything (every version is pinned), so
# a second build needs no network. Prints the chosen JDK's home.
#   scripts/build-java.sh            build examples/java/target/{function,runtime-interface-client}
#   scripts/build-java.sh DIR        also copy the deployment tree (classes + lib/) into DIR (sam build)
#   scripts/build-java.sh --java-home   only print the JDK's home
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# A JDK whose major version is at least 21: CREDENTIAL_REFRESH_JAVA_HOME,
# JAVA_HOME, then the newest under /usr/lib/jvm.
java_home() {
	local d v
	for d in "${CREDENTIAL_REFRESH_JAVA_HOME:-}" "${JAVA_HOME:-}" $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
		d=${d%/}
		[[ -n $d && -x $d/bin/javac ]] || continue
		v=$("$d/bin/java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
		if [[ ${v%%.*} =~ ^[0-9]+$ ]] && ((${v%%.*} >= 21)); then
			echo "$d"
			return
		fi
	done
	echo "no JDK >= 21 found (set CREDENTIAL_REFRESH_JAVA_HOME)" >&2
	return 1
}

JDK=$(java_home)
if [[ ${1:-} == --java-home ]]; then
	echo "$JDK"
	exit 0
fi
mvn_args=(-B -q -Dmaven.repo.local="$ROOT/.m2" -f examples/java/pom.xml package)
if ! JAVA_HOME=$JDK mvn -o "${mvn_args[@]}" >/tmp/credential-refresh-mvn-offline.log 2>&1; then
	# First build: download the pinned artifacts from Maven Central.
	JAVA_HOME=$JDK mvn "${mvn_args[@]}"
fi
# The runtime interface client copies its JNI library to one fixed path,
# /tmp/.libaws-lambda-jni.so, replacing it at every start: JVMs starting side
# by side (the e2e runs several environments at once) then map a file being
# rewritten and die of SIGBUS. Extract it once here; the stand-in runtime
# hands its path to the client (…NativeClient.JNI), which then loads it as is.
ric=examples/java/target/runtime-interface-client
(cd "$ric" && rm -rf jni && "$JDK/bin/jar" xf aws-lambda-java-runtime-interface-client-*.jar jni)
if [[ -n ${1:-} ]]; then
	mkdir -p "$1"
	cp -R examples/java/target/function/. "$1/"
fi
