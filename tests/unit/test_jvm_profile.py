"""The JVM profile's summary of Flight Recorder events (``bench.jvm_profile``), on events shaped as ``jfr print
--json`` writes them."""

from bench.jvm_profile import execution, thread_cpu


def load(thread: str, tid: int, at: str, user: float) -> dict:
    return {"values": {"startTime": f"2026-11-27T05:00:{at}Z", "user": user, "system": 0.0,
                       "eventThread": {"javaName": thread, "osName": thread, "osThreadId": tid}}}


def sample(method: str, how: str | None) -> dict:
    frames = [] if how is None else [{"type": how, "method": {"type": {"name": "org/example/Parser"}, "name": method}}]
    return {"values": {"stackTrace": {"frames": frames}}}


def test_thread_cpu_is_each_family_over_the_recording() -> None:
    loads = [
        load("C2 CompilerThread0", 11, "00.000000000", 0.25), load("C2 CompilerThread0", 11, "10.000000000", 0.25),
        load("C2 CompilerThread1", 12, "10.000000000", 0.05),
        # a task thread that ended after 5 s, at a full core (half of a two-core machine)
        load("Executor task launch worker for task 3.0 in stage 7.0 (TID 9)", 13, "05.000000000", 0.5),
        load("C2 CompilerThread0", 11, "20.000000000", 0.0),
    ]
    cpu = thread_cpu(loads, cores=2)
    # 20 s recorded: C2 threads 0.25 * 2 cores for 10 s, 0.05 * 2 for 10 s; the task 0.5 * 2 for 5 s
    assert round(cpu["CN CompilerThreadN"], 6) == 30.0
    assert round(cpu["Executor task launch worker for task N.N in stage N.N (TID N)"], 6) == 25.0


def test_execution_counts_how_the_top_frames_ran() -> None:
    kinds, methods = execution([sample("nextToken", "Interpreted"), sample("nextToken", "Interpreted"),
                                sample("parse", "JIT compiled"), sample("idle", None)])
    assert kinds == {"Interpreted": 2, "JIT compiled": 1}
    assert methods.most_common(1) == [("org.example.Parser.nextToken (Interpreted)", 2)]
