"""One router per domain noun: users and auth, courses, enrollments, payments, health, analytics."""
