-- (0008: completion also needs every published required assessment passed.)
-- AFTER INSERT/UPDATE OF completed/DELETE ON lesson_progress: maintain the
-- enrollment incrementally (O(1), no recount): completed_lessons +/- 1,
-- progress_percent = completed_lessons / courses.lesson_count * 100 (capped at
-- 100). All lessons done and every published required assessment passed:
-- status 'completed' with completed_at. A lesson
-- un-completed: a completed enrollment reverts to 'active', completed_at NULL,
-- certificate cleared. A progress row removed with its lesson (the course got
-- shorter) changes the counts only. Dropped enrollments are never touched.
CREATE OR REPLACE FUNCTION elearn_enrollment_progress_sync()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_delta int := 0;
    v_enrollment uuid;
    v_revert boolean;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_enrollment := NEW.enrollment_id;
        IF NEW.completed THEN
            v_delta := v_delta + 1;
        END IF;
    ELSE
        v_enrollment := OLD.enrollment_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.completed THEN
        v_delta := v_delta - 1;
    END IF;
    IF v_delta = 0 THEN
        RETURN NULL;
    END IF;
    v_revert := v_delta < 0;
    IF v_revert AND TG_OP = 'DELETE' THEN
        v_revert := EXISTS (SELECT 1 FROM course_lessons WHERE id = OLD.lesson_id);
    END IF;

    UPDATE enrollments e
    SET completed_lessons = greatest(e.completed_lessons + v_delta, 0),
        progress_percent = CASE
            WHEN c.lesson_count > 0 THEN
                least(100, round(greatest(e.completed_lessons + v_delta, 0) * 100.0
                                 / c.lesson_count, 2))
            ELSE 0
        END,
        status = CASE
            WHEN v_delta > 0 AND e.status = 'active' AND c.lesson_count > 0
                 AND e.completed_lessons + v_delta >= c.lesson_count
                 AND elearn_assessments_passed(e.id, e.course_id) THEN 'completed'
            WHEN v_revert AND e.status = 'completed'
                 AND e.completed_lessons + v_delta < c.lesson_count THEN 'active'
            ELSE e.status
        END,
        completed_at = CASE
            WHEN v_delta > 0 AND e.status = 'active' AND c.lesson_count > 0
                 AND e.completed_lessons + v_delta >= c.lesson_count
                 AND elearn_assessments_passed(e.id, e.course_id) THEN now()
            WHEN v_revert AND e.status = 'completed'
                 AND e.completed_lessons + v_delta < c.lesson_count THEN NULL
            ELSE e.completed_at
        END,
        certificate_url = CASE
            WHEN v_revert AND e.status = 'completed'
                 AND e.completed_lessons + v_delta < c.lesson_count THEN NULL
            ELSE e.certificate_url
        END,
        certificate_issued_at = CASE
            WHEN v_revert AND e.status = 'completed'
                 AND e.completed_lessons + v_delta < c.lesson_count THEN NULL
            ELSE e.certificate_issued_at
        END
    FROM courses c
    WHERE e.id = v_enrollment AND c.id = e.course_id AND e.status <> 'dropped';
    RETURN NULL;
END;
$$;
