-- Make the completion of the given enrollments, and of every enrollment of the
-- given courses on this shard, agree with the rule: an enrollment is completed
-- when it has a lesson, every lesson is done and every published required
-- assessment has a passed attempt; otherwise it is active. A reverted
-- enrollment loses completed_at and its certificate. Dropped enrollments are
-- never touched. Set-based (one statement); returns how many rows changed.
CREATE OR REPLACE FUNCTION elearn_sync_completion(p_enrollment_ids uuid[], p_course_ids uuid[])
RETURNS int
LANGUAGE plpgsql
AS $$
DECLARE
    v_changed int;
BEGIN
    -- Lock first, then decide in a new statement (a fresh READ COMMITTED
    -- snapshot): a concurrent pass, lesson completion or publication holding one
    -- of these rows is waited for and then seen, so two transactions can never
    -- both decide from a state without the other's change.
    PERFORM 1 FROM enrollments e
    WHERE e.status <> 'dropped'
      AND (e.id = ANY (coalesce(p_enrollment_ids, '{}'::uuid[]))
           OR e.course_id = ANY (coalesce(p_course_ids, '{}'::uuid[])))
    ORDER BY e.id
    FOR NO KEY UPDATE OF e;
    WITH target AS (
        SELECT e.id,
               (c.lesson_count > 0 AND e.completed_lessons >= c.lesson_count
                AND elearn_assessments_passed(e.id, e.course_id)) AS done
        FROM enrollments e
        JOIN courses c ON c.id = e.course_id
        WHERE e.status <> 'dropped'
          AND (e.id = ANY (coalesce(p_enrollment_ids, '{}'::uuid[]))
               OR e.course_id = ANY (coalesce(p_course_ids, '{}'::uuid[])))
    )
    UPDATE enrollments e
    SET status = CASE WHEN t.done THEN 'completed' ELSE 'active' END,
        completed_at = CASE WHEN t.done THEN now() ELSE NULL END,
        certificate_url = CASE WHEN t.done THEN e.certificate_url ELSE NULL END,
        certificate_issued_at = CASE WHEN t.done THEN e.certificate_issued_at ELSE NULL END
    FROM target t
    WHERE e.id = t.id AND (e.status = 'completed') <> t.done;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END;
$$;
