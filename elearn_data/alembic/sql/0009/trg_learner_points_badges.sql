CREATE TRIGGER trg_learner_points_badges
AFTER INSERT OR UPDATE ON learner_points
FOR EACH ROW EXECUTE FUNCTION elearn_award_badges();
