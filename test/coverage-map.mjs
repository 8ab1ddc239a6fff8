// Every test file may cover any product source file; tests and harness code are not counted.
export default function coverageMap() {
  return ['src/']
}
