extern "C" int crmsync_test_dependency_value(void) { return 42; }
