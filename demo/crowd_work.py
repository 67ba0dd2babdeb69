"""The simulated crowd at work: members taking turns at the rater's loop (lease, judge,
submit through the same services as the rater API), with agreement runs at checkpoints."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.contrib.auth.models import User

from core.jobs import JobStatus as RunStatus
from demo import crowd as crowd_model
from demo.crowd import CrowdProfile, ShownResponse, Task
from labeling import services as labeling_services
from labeling.models import Project, Prompt
from rankings.models import AgreementRun
from rankings.rating import services as rating_services
from rankings.runs import services as run_services


@dataclass(frozen=True)
class CrowdMember:
    profile: CrowdProfile
    user: User
    judge_rng: random.Random  # the rater's decisions
    lease_rng: random.Random  # passed to the lease service: gold draws and shuffles


def working_crowd(
    *, crowd_users: dict[str, User], usernames: tuple[str, ...] | None
) -> dict[str, User]:
    if usernames is None:
        return crowd_users
    return {username: crowd_users[username] for username in usernames}


def crowd_members(
    *, crowd_users: dict[str, User], seed: str, usernames: tuple[str, ...] | None
) -> list[CrowdMember]:
    working = working_crowd(crowd_users=crowd_users, usernames=usernames)
    return [
        CrowdMember(
            profile=profile,
            user=working[profile.username],
            judge_rng=random.Random(f"{seed}-{profile.username}-judge"),
            lease_rng=random.Random(f"{seed}-{profile.username}-lease"),
        )
        for profile in crowd_model.CROWD
        if profile.username in working
    ]


class CrowdWork:
    """The crowd taking turns at the rater's loop: ask for the next task, rank it, submit."""

    def __init__(
        self,
        *,
        project: Project,
        crowd: list[CrowdMember],
        shown: dict[int, ShownResponse],
        run_every: int,
    ):
        self.project = project
        self.crowd = crowd
        self.shown = shown
        self.run_every = run_every
        self.since_run = 0

    def until_no_task_is_left(self) -> None:
        active = list(self.crowd)
        while active:
            for member in list(active):
                if not self.rank_next(member):
                    active.remove(member)

    def until_open_prompts(self, left_open: int) -> None:
        """Rank until only ``left_open`` normal prompts still want a ranking."""
        active = list(self.crowd)
        while active and self.open_prompts() > left_open:
            for member in list(active):
                if self.open_prompts() <= left_open:
                    return
                if not self.rank_next(member):
                    active.remove(member)

    def open_prompts(self) -> int:
        return Prompt.objects.filter(project=self.project, is_gold=False, is_complete=False).count()

    def rank_next(self, member: CrowdMember) -> bool:
        """One task for one crowd member; False when nothing is left for them."""
        project = self.project  # the object project_update changed: the raised overlap shows
        assignment = labeling_services.lease_next_assignment(
            project=project, rater=member.user, rng=member.lease_rng
        )
        if assignment is None:
            return False
        task = Task(
            responses=tuple(self.shown[int(response_id)] for response_id in assignment.shown_order),
            allow_ties=project.allow_ties,
            rubric=project.rubric,
            rationale_required=project.require_rationale,
        )
        judgement = crowd_model.judge(member.profile, task, member.judge_rng)
        rating_services.ranking_submit(
            assignment_id=assignment.pk,
            rater=member.user,
            ranking=judgement.ranking,
            ratings=judgement.ratings or None,
            rationale=judgement.rationale,
            seconds=judgement.seconds,
            strength=judgement.strength,
        )
        self.since_run += 1
        if self.since_run >= self.run_every:
            self.agreement_run()
        return True

    def agreement_run(self) -> AgreementRun | None:
        """Queue a run the way the N-rankings trigger does, and compute it here and now."""
        if not self.since_run:
            return None
        run = run_services.agreement_run_request(project=self.project, trigger="rankings")
        run_services.agreement_run_compute(run_id=run.pk)
        run.refresh_from_db()
        if run.status != RunStatus.DONE:
            raise RuntimeError(f"demo agreement run {run.pk} failed: {run.error}")
        self.since_run = 0
        return run
