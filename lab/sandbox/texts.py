# ruff: noqa: E501 - prose in three languages reads better unbroken
"""The exercises' words: title, story, hints (in order) and solution, in English, Korean and Japanese.

Kept apart from the mechanics (`lab.sandbox.exercises`) so a translator edits one file.
"""

from __future__ import annotations

LANGS = ("en", "ko", "ja")


def _t(title: str, story: str, hints: list[str], solution: str) -> dict:
    return {"title": title, "story": story, "hints": hints, "solution": solution}


TEXTS: dict[str, dict[str, dict]] = {
    "agent-host-ports": {
        "en": _t("The agent lost its host ports",
                 "A teammate cleaned up the agent task definition and removed every hostPort. Traces and "
                 "DogStatsD metrics from the apps stopped arriving.",
                 ["Apps send to the instance's private IP, not to the agent container.",
                  "In bridge mode a container port is reachable on the instance only when it is published.",
                  "Look at portMappings of the datadog-agent container: 8126/tcp and 8125/udp need hostPort."],
                 "Register a revision whose datadog-agent portMappings have hostPort 8126 (tcp) and 8125 "
                 "(udp), then update-service datadog-agent to it."),
        "ko": _t("에이전트의 호스트 포트가 사라졌습니다",
                 "동료가 에이전트 태스크 정의를 정리하면서 hostPort를 모두 지웠습니다. 앱의 트레이스와 "
                 "DogStatsD 메트릭이 더 이상 도착하지 않습니다.",
                 ["앱은 에이전트 컨테이너가 아니라 인스턴스의 프라이빗 IP로 보냅니다.",
                  "bridge 모드에서는 포트를 게시해야만 인스턴스에서 접근할 수 있습니다.",
                  "datadog-agent 컨테이너의 portMappings에서 8126/tcp와 8125/udp에 hostPort가 필요합니다."],
                 "datadog-agent의 portMappings에 hostPort 8126(tcp)과 8125(udp)를 넣은 리비전을 등록하고 "
                 "update-service로 datadog-agent를 갱신하세요."),
        "ja": _t("エージェントのホストポートが消えた",
                 "同僚がエージェントのタスク定義を整理し、hostPort をすべて削除しました。アプリのトレースと "
                 "DogStatsD メトリクスが届かなくなりました。",
                 ["アプリはエージェントのコンテナではなく、インスタンスのプライベート IP に送ります。",
                  "bridge モードでは公開されたポートだけがインスタンスから届きます。",
                  "datadog-agent コンテナの portMappings: 8126/tcp と 8125/udp に hostPort が必要です。"],
                 "datadog-agent の portMappings に hostPort 8126 (tcp) と 8125 (udp) を戻したリビジョンを登録し、"
                 "update-service で datadog-agent を更新します。"),
    },
    "apm-non-local-traffic": {
        "en": _t("Traces from other containers are refused",
                 "Someone copied an old snippet that sets DD_APM_NON_LOCAL_TRAFFIC=false on the agent. The "
                 "agent runs, but no app's traces reach Datadog.",
                 ["The agent itself still sends its own metrics: the problem is between apps and the agent.",
                  "Which traffic does the trace-agent accept when non-local traffic is off?",
                  "Check DD_APM_NON_LOCAL_TRAFFIC in the agent's environment."],
                 "Set DD_APM_NON_LOCAL_TRAFFIC=true in the datadog-agent container, register the revision, "
                 "update-service."),
        "ko": _t("다른 컨테이너의 트레이스가 거부됩니다",
                 "누군가 에이전트에 DD_APM_NON_LOCAL_TRAFFIC=false를 넣는 오래된 예제를 복사했습니다. "
                 "에이전트는 돌지만 앱의 트레이스가 Datadog에 도착하지 않습니다.",
                 ["에이전트 자신의 메트릭은 여전히 전송됩니다: 문제는 앱과 에이전트 사이입니다.",
                  "non-local traffic이 꺼져 있으면 trace-agent는 어떤 트래픽을 받을까요?",
                  "에이전트 환경 변수의 DD_APM_NON_LOCAL_TRAFFIC를 확인하세요."],
                 "datadog-agent 컨테이너에 DD_APM_NON_LOCAL_TRAFFIC=true를 설정하고 리비전을 등록한 뒤 "
                 "update-service 하세요."),
        "ja": _t("他のコンテナからのトレースが拒否される",
                 "古いスニペットをコピーして、エージェントに DD_APM_NON_LOCAL_TRAFFIC=false が入りました。"
                 "エージェントは動いていますが、アプリのトレースが届きません。",
                 ["エージェント自身のメトリクスは届いています。問題はアプリとエージェントの間です。",
                  "non-local traffic がオフのとき trace-agent はどの通信を受け付けますか?",
                  "エージェントの環境変数 DD_APM_NON_LOCAL_TRAFFIC を確認してください。"],
                 "datadog-agent コンテナに DD_APM_NON_LOCAL_TRAFFIC=true を設定し、リビジョンを登録して "
                 "update-service します。"),
    },
    "dogstatsd-non-local-traffic": {
        "en": _t("DogStatsD ignores the apps",
                 "Custom metrics vanished after an agent redeploy. Traces still arrive. DogStatsD is UDP: the "
                 "apps see no error at all.",
                 ["Traces flow, so the apps find the agent host.",
                  "DogStatsD's default is to listen for its own container only.",
                  "Look for DD_DOGSTATSD_NON_LOCAL_TRAFFIC in the agent's environment."],
                 "Set DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true on the datadog-agent container and update-service."),
        "ko": _t("DogStatsD가 앱을 무시합니다",
                 "에이전트를 재배포한 뒤 커스텀 메트릭이 사라졌습니다. 트레이스는 여전히 도착합니다. "
                 "DogStatsD는 UDP라서 앱에는 오류가 전혀 보이지 않습니다.",
                 ["트레이스가 흐르므로 앱은 에이전트 호스트를 찾고 있습니다.",
                  "DogStatsD의 기본값은 자기 컨테이너의 트래픽만 받는 것입니다.",
                  "에이전트 환경 변수에서 DD_DOGSTATSD_NON_LOCAL_TRAFFIC를 찾아보세요."],
                 "datadog-agent 컨테이너에 DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true를 설정하고 update-service 하세요."),
        "ja": _t("DogStatsD がアプリを無視する",
                 "エージェントの再デプロイ後、カスタムメトリクスが消えました。トレースは届いています。"
                 "DogStatsD は UDP なので、アプリにはエラーが一切見えません。",
                 ["トレースは流れているので、アプリはエージェントのホストを見つけています。",
                  "DogStatsD の既定値は自分のコンテナの通信だけを受け付けることです。",
                  "エージェントの環境変数 DD_DOGSTATSD_NON_LOCAL_TRAFFIC を探してください。"],
                 "datadog-agent コンテナに DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true を設定して update-service します。"),
    },
    "apm-disabled": {
        "en": _t("APM switched off",
                 "To save memory, someone set DD_APM_ENABLED=false on the agent. The apps' traces are gone.",
                 ["Metrics still arrive: the agent is up.",
                  "Is anything listening on 8126 inside the agent container?",
                  "DD_APM_ENABLED decides whether the trace-agent runs."],
                 "Set DD_APM_ENABLED=true on the datadog-agent container and update-service."),
        "ko": _t("APM이 꺼졌습니다",
                 "메모리를 아끼려고 누군가 에이전트에 DD_APM_ENABLED=false를 설정했습니다. 앱의 트레이스가 "
                 "사라졌습니다.",
                 ["메트릭은 여전히 도착합니다: 에이전트는 살아 있습니다.",
                  "에이전트 컨테이너 안에서 8126을 듣는 것이 있나요?",
                  "DD_APM_ENABLED가 trace-agent 실행 여부를 정합니다."],
                 "datadog-agent 컨테이너에 DD_APM_ENABLED=true를 설정하고 update-service 하세요."),
        "ja": _t("APM がオフになっている",
                 "メモリ節約のため、エージェントに DD_APM_ENABLED=false が設定されました。トレースが消えました。",
                 ["メトリクスは届いています。エージェントは動いています。",
                  "エージェントのコンテナで 8126 を待ち受けているものはありますか?",
                  "DD_APM_ENABLED が trace-agent を動かすかどうかを決めます。"],
                 "datadog-agent コンテナに DD_APM_ENABLED=true を設定して update-service します。"),
    },
    "dogstatsd-port-mismatch": {
        "en": _t("DogStatsD on the wrong port",
                 "The agent was moved to DD_DOGSTATSD_PORT=8135 while its port mapping and the apps still "
                 "use 8125. Custom metrics stopped; nothing reports an error.",
                 ["The apps send DogStatsD to the instance IP on 8125.",
                  "The host port forwards to the same container port: who listens there?",
                  "Compare DD_DOGSTATSD_PORT with the 8125/udp port mapping."],
                 "Set DD_DOGSTATSD_PORT=8125 (matching the mapping and the apps) and update-service."),
        "ko": _t("DogStatsD 포트가 다릅니다",
                 "에이전트가 DD_DOGSTATSD_PORT=8135로 바뀌었지만 포트 매핑과 앱은 여전히 8125를 씁니다. "
                 "커스텀 메트릭이 멈췄고 아무 오류도 없습니다.",
                 ["앱은 DogStatsD를 인스턴스 IP의 8125로 보냅니다.",
                  "호스트 포트는 같은 컨테이너 포트로 전달됩니다: 거기서 누가 듣고 있나요?",
                  "DD_DOGSTATSD_PORT와 8125/udp 포트 매핑을 비교하세요."],
                 "DD_DOGSTATSD_PORT=8125로 (매핑과 앱에 맞춰) 설정하고 update-service 하세요."),
        "ja": _t("DogStatsD のポート違い",
                 "エージェントが DD_DOGSTATSD_PORT=8135 に変更されましたが、ポートマッピングとアプリは 8125 の"
                 "ままです。カスタムメトリクスが止まり、エラーはどこにも出ません。",
                 ["アプリは DogStatsD をインスタンス IP の 8125 に送ります。",
                  "ホストポートは同じコンテナポートへ転送されます。そこで誰が待ち受けていますか?",
                  "DD_DOGSTATSD_PORT と 8125/udp のポートマッピングを比べてください。"],
                 "DD_DOGSTATSD_PORT=8125 (マッピングとアプリに合わせる) にして update-service します。"),
    },
    "app-agent-host-localhost": {
        "en": _t("The app sends to localhost",
                 "A developer 'simplified' web-imdsv1's entryPoint to export DD_AGENT_HOST=localhost. It works "
                 "on their laptop; on ECS its traces are gone.",
                 ["In bridge mode, what is localhost inside the app's container?",
                  "The agent is reachable at the instance's private IP.",
                  "The docs' line reads local-ipv4 from IMDS into DD_AGENT_HOST."],
                 "Put back the docs' entryPoint: export DD_AGENT_HOST=$(curl "
                 "$AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/meta-data/local-ipv4), register, update-service "
                 "web-imdsv1."),
        "ko": _t("앱이 localhost로 보냅니다",
                 "개발자가 web-imdsv1의 entryPoint를 export DD_AGENT_HOST=localhost로 '단순화'했습니다. 노트북에서는 "
                 "되지만 ECS에서는 트레이스가 사라졌습니다.",
                 ["bridge 모드에서 앱 컨테이너 안의 localhost는 무엇일까요?",
                  "에이전트는 인스턴스의 프라이빗 IP에서 접근할 수 있습니다.",
                  "문서의 한 줄은 IMDS의 local-ipv4를 DD_AGENT_HOST로 읽습니다."],
                 "문서의 entryPoint(export DD_AGENT_HOST=$(curl .../latest/meta-data/local-ipv4))로 되돌리고 등록한 뒤 "
                 "web-imdsv1을 update-service 하세요."),
        "ja": _t("アプリが localhost に送っている",
                 "開発者が web-imdsv1 の entryPoint を export DD_AGENT_HOST=localhost に「簡略化」しました。"
                 "ノート PC では動きますが、ECS ではトレースが消えました。",
                 ["bridge モードでは、アプリのコンテナ内の localhost は何でしょう?",
                  "エージェントにはインスタンスのプライベート IP で届きます。",
                  "ドキュメントの行は IMDS の local-ipv4 を DD_AGENT_HOST に読み込みます。"],
                 "ドキュメントの entryPoint (export DD_AGENT_HOST=$(curl .../latest/meta-data/local-ipv4)) に戻して"
                 "登録し、web-imdsv1 を update-service します。"),
    },
    "imdsv2-required": {
        "en": _t("IMDSv2 became mandatory",
                 "Security turned on HttpTokens=required on the instances. After its next deployment, "
                 "web-imdsv1 no longer reports traces.",
                 ["What does IMDS answer to a GET without a token when tokens are required?",
                  "The app's entryPoint uses the IMDSv1 curl line, so DD_AGENT_HOST ends up wrong.",
                  "The docs have an IMDSv2 line: PUT /latest/api/token first, then GET with the token."],
                 "Change web-imdsv1's entryPoint to the IMDSv2 token flow (as the imdsv2 task definition has "
                 "it), register, update-service web-imdsv1."),
        "ko": _t("IMDSv2가 필수가 되었습니다",
                 "보안팀이 인스턴스에 HttpTokens=required를 켰습니다. 다음 배포 후 web-imdsv1이 트레이스를 "
                 "보내지 않습니다.",
                 ["토큰이 필수일 때 토큰 없는 GET에 IMDS는 무엇을 답할까요?",
                  "앱의 entryPoint는 IMDSv1 curl 줄을 써서 DD_AGENT_HOST가 잘못됩니다.",
                  "문서에는 IMDSv2 줄이 있습니다: 먼저 PUT /latest/api/token, 그다음 토큰과 함께 GET."],
                 "web-imdsv1의 entryPoint를 IMDSv2 토큰 흐름(imdsv2 태스크 정의와 같게)으로 바꾸고 등록한 뒤 "
                 "update-service 하세요."),
        "ja": _t("IMDSv2 が必須になった",
                 "セキュリティチームがインスタンスに HttpTokens=required を設定しました。次のデプロイ後、"
                 "web-imdsv1 のトレースが届かなくなりました。",
                 ["トークン必須のとき、トークンなしの GET に IMDS は何を返しますか?",
                  "アプリの entryPoint は IMDSv1 の curl 行なので、DD_AGENT_HOST がおかしくなります。",
                  "ドキュメントには IMDSv2 の行があります。まず PUT /latest/api/token、次にトークン付きで GET。"],
                 "web-imdsv1 の entryPoint を IMDSv2 のトークン方式 (imdsv2 のタスク定義と同じ) に変えて登録し、"
                 "update-service します。"),
    },
    "imdsv2-hop-limit": {
        "en": _t("IMDSv2 with a hop limit of 1",
                 "Security hardened the instances: HttpTokens=required and HttpPutResponseHopLimit=1. "
                 "web-imdsv2 already uses the IMDSv2 token line, yet after its next deployment its traces stopped.",
                 ["Run the app's token PUT from inside a bridge-mode container: does an answer come back?",
                  "In bridge mode the container is one network hop further from IMDS than the instance.",
                  "The token's answer carries an IP hop limit: aws ec2 describe-instances shows "
                  "MetadataOptions.HttpPutResponseHopLimit."],
                 "aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2 (keep HttpTokens "
                 "required) on every instance, then a new deployment of web-imdsv2 so it reads IMDS again."),
        "ko": _t("홉 제한 1인 IMDSv2",
                 "보안팀이 인스턴스를 강화했습니다: HttpTokens=required, HttpPutResponseHopLimit=1. "
                 "web-imdsv2는 이미 IMDSv2 토큰 줄을 쓰는데도 다음 배포 후 트레이스가 멈췄습니다.",
                 ["bridge 모드 컨테이너 안에서 앱의 토큰 PUT을 실행해 보세요: 응답이 돌아오나요?",
                  "bridge 모드에서 컨테이너는 인스턴스보다 IMDS에서 네트워크 홉 하나만큼 더 멉니다.",
                  "토큰 응답에는 IP 홉 제한이 있습니다: aws ec2 describe-instances의 "
                  "MetadataOptions.HttpPutResponseHopLimit을 보세요."],
                 "모든 인스턴스에 aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2 "
                 "(HttpTokens required는 유지)를 실행한 뒤, web-imdsv2를 새로 배포해 IMDS를 다시 읽게 하세요."),
        "ja": _t("ホップ制限 1 の IMDSv2",
                 "セキュリティチームがインスタンスを強化しました: HttpTokens=required、HttpPutResponseHopLimit=1。"
                 "web-imdsv2 はすでに IMDSv2 のトークン行を使っているのに、次のデプロイ後トレースが止まりました。",
                 ["bridge モードのコンテナ内でアプリのトークン PUT を実行してみてください。応答は返ってきますか?",
                  "bridge モードのコンテナは、インスタンスより IMDS からネットワークのホップが 1 つ遠くなります。",
                  "トークンの応答には IP のホップ制限があります。aws ec2 describe-instances の "
                  "MetadataOptions.HttpPutResponseHopLimit を確認します。"],
                 "すべてのインスタンスで aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2 "
                 "(HttpTokens required はそのまま) を実行し、web-imdsv2 を新しくデプロイして IMDS を読み直させます。"),
    },
    "container-metadata-disabled": {
        "en": _t("The container metadata file is not there",
                 "The instances were rebuilt from a new launch template whose /etc/ecs/ecs.config lacks "
                 "ECS_ENABLE_CONTAINER_METADATA=true. web-metadata-file stopped reporting after its next deployment.",
                 ["How does web-metadata-file find DD_AGENT_HOST? Look at its entryPoint.",
                  "Inside the container, is ECS_CONTAINER_METADATA_FILE set, and does the file exist?",
                  "The ECS agent writes that file only when ECS_ENABLE_CONTAINER_METADATA=true (it is off "
                  "by default)."],
                 "Add ECS_ENABLE_CONTAINER_METADATA=true to /etc/ecs/ecs.config on every instance, restart the "
                 "ECS agent, then a new deployment of web-metadata-file (files are written when containers start)."),
        "ko": _t("컨테이너 메타데이터 파일이 없습니다",
                 "인스턴스를 새 시작 템플릿으로 다시 만들었는데, 그 /etc/ecs/ecs.config에 "
                 "ECS_ENABLE_CONTAINER_METADATA=true가 없습니다. 다음 배포 후 web-metadata-file이 데이터를 보내지 않습니다.",
                 ["web-metadata-file은 DD_AGENT_HOST를 어떻게 찾나요? entryPoint를 보세요.",
                  "컨테이너 안에 ECS_CONTAINER_METADATA_FILE이 설정되어 있고 그 파일이 있나요?",
                  "ECS 에이전트는 ECS_ENABLE_CONTAINER_METADATA=true일 때만 그 파일을 씁니다(기본값은 꺼짐)."],
                 "모든 인스턴스의 /etc/ecs/ecs.config에 ECS_ENABLE_CONTAINER_METADATA=true를 추가하고 ECS "
                 "에이전트를 재시작한 뒤, web-metadata-file을 새로 배포하세요(파일은 컨테이너 시작 시 만들어집니다)."),
        "ja": _t("コンテナメタデータファイルがない",
                 "新しい起動テンプレートでインスタンスを作り直しましたが、その /etc/ecs/ecs.config に "
                 "ECS_ENABLE_CONTAINER_METADATA=true がありません。次のデプロイ後、web-metadata-file のデータが届きません。",
                 ["web-metadata-file はどうやって DD_AGENT_HOST を見つけますか? entryPoint を見てください。",
                  "コンテナ内で ECS_CONTAINER_METADATA_FILE は設定されていて、ファイルはありますか?",
                  "ECS エージェントがそのファイルを書くのは ECS_ENABLE_CONTAINER_METADATA=true のときだけです "
                  "(既定はオフ)。"],
                 "すべてのインスタンスの /etc/ecs/ecs.config に ECS_ENABLE_CONTAINER_METADATA=true を追加して ECS "
                 "エージェントを再起動し、web-metadata-file を新しくデプロイします (ファイルはコンテナ起動時に書かれます)。"),
    },
    "wrong-dd-site": {
        "en": _t("The agent reports to the wrong site",
                 "The agent task definition was copied from a team in Europe and now has DD_SITE=datadoghq.eu. "
                 "Your organization is on datadoghq.com. Nothing shows up any more.",
                 ["Does the agent send at all? Its logs (`ecs-lab logs`) show the intake's answers.",
                  "The intake answers 403 Forbidden: an API key is valid only on its organization's site.",
                  "Compare DD_SITE with the site in your Datadog URL (app.datadoghq.com is datadoghq.com)."],
                 "Set DD_SITE to your organization's site (datadoghq.com) in the agent's environment, register, "
                 "update-service datadog-agent."),
        "ko": _t("에이전트가 잘못된 사이트로 보냅니다",
                 "유럽 팀의 에이전트 태스크 정의를 복사해서 DD_SITE=datadoghq.eu가 되었습니다. 여러분의 조직은 "
                 "datadoghq.com에 있습니다. 아무것도 보이지 않습니다.",
                 ["에이전트가 보내고는 있나요? 로그(`ecs-lab logs`)에 인테이크의 응답이 보입니다.",
                  "인테이크가 403 Forbidden으로 답합니다: API 키는 그 조직의 사이트에서만 유효합니다.",
                  "DD_SITE를 Datadog URL의 사이트와 비교하세요(app.datadoghq.com이면 datadoghq.com)."],
                 "에이전트 환경의 DD_SITE를 조직의 사이트(datadoghq.com)로 바꾸고 등록한 뒤 update-service "
                 "datadog-agent 하세요."),
        "ja": _t("エージェントが違うサイトに送っている",
                 "ヨーロッパのチームからエージェントのタスク定義をコピーしたため DD_SITE=datadoghq.eu になりました。"
                 "あなたの組織は datadoghq.com にあります。何も表示されなくなりました。",
                 ["エージェントは送信していますか? ログ (`ecs-lab logs`) にインテークの応答が出ています。",
                  "インテークは 403 Forbidden を返します。API キーはその組織のサイトでだけ有効です。",
                  "DD_SITE を Datadog の URL のサイトと比べます (app.datadoghq.com なら datadoghq.com)。"],
                 "エージェントの環境の DD_SITE を組織のサイト (datadoghq.com) にして登録し、update-service "
                 "datadog-agent します。"),
    },
    "fips-without-proxy": {
        "en": _t("FIPS mode without its proxy",
                 "Compliance asked for FIPS, so DD_FIPS_ENABLED=true was added to the agent, and nothing else. "
                 "Every kind of data stopped.",
                 ["With FIPS on, where does the agent send its data?",
                  "The agent sends to 127.0.0.1 from port 9803 up: who listens there?",
                  "The docs' FIPS task definition has a datadog/fips-proxy sidecar in host network mode."],
                 "Either add the fips-proxy sidecar in the agent's network namespace (the docs' FIPS task "
                 "definition) or remove DD_FIPS_ENABLED; register, update-service datadog-agent. The "
                 "solution applied here removes it."),
        "ko": _t("프록시 없는 FIPS 모드",
                 "컴플라이언스 요구로 에이전트에 DD_FIPS_ENABLED=true만 추가했습니다. 모든 데이터가 멈췄습니다.",
                 ["FIPS가 켜지면 에이전트는 데이터를 어디로 보낼까요?",
                  "에이전트는 127.0.0.1의 9803번부터 보냅니다: 거기서 누가 듣고 있나요?",
                  "문서의 FIPS 태스크 정의에는 host 네트워크 모드의 datadog/fips-proxy 사이드카가 있습니다."],
                 "fips-proxy 사이드카를 에이전트의 네트워크 네임스페이스에 추가하거나(문서의 FIPS 태스크 정의) "
                 "DD_FIPS_ENABLED를 제거한 뒤 등록하고 update-service 하세요. 여기서 적용하는 해답은 제거입니다."),
        "ja": _t("プロキシのない FIPS モード",
                 "コンプライアンス対応でエージェントに DD_FIPS_ENABLED=true だけを追加しました。すべてのデータが"
                 "止まりました。",
                 ["FIPS がオンのとき、エージェントはデータをどこへ送りますか?",
                  "エージェントは 127.0.0.1 の 9803 番以降に送ります。そこで誰が待ち受けていますか?",
                  "ドキュメントの FIPS タスク定義には host ネットワークモードの datadog/fips-proxy サイドカーがあります。"],
                 "fips-proxy サイドカーをエージェントのネットワーク名前空間に追加する (ドキュメントの FIPS タスク定義) "
                 "か、DD_FIPS_ENABLED を外して登録し update-service します。ここで適用する解答は外す方です。"),
    },
    "api-key-secret-missing": {
        "en": _t("The API key secret does not exist",
                 "The agent now reads DD_API_KEY from Secrets Manager, but the ARN points at a secret nobody "
                 "created. The agent task never starts.",
                 ["aws ecs describe-tasks --desired-status STOPPED shows why the task stopped.",
                  "ECS fetches secrets before any container starts.",
                  "aws secretsmanager describe-secret --secret-id <arn> tells whether it exists."],
                 "Create the secret (aws secretsmanager create-secret --name datadog-api-key), put its ARN in "
                 "the agent's secrets valueFrom, register, update-service datadog-agent."),
        "ko": _t("API 키 시크릿이 없습니다",
                 "에이전트가 이제 Secrets Manager에서 DD_API_KEY를 읽지만, ARN이 아무도 만들지 않은 시크릿을 "
                 "가리킵니다. 에이전트 태스크가 시작되지 않습니다.",
                 ["aws ecs describe-tasks --desired-status STOPPED가 태스크가 멈춘 이유를 보여 줍니다.",
                  "ECS는 어떤 컨테이너보다 먼저 시크릿을 가져옵니다.",
                  "aws secretsmanager describe-secret --secret-id <arn>으로 존재 여부를 확인하세요."],
                 "시크릿을 만들고(aws secretsmanager create-secret --name datadog-api-key) 그 ARN을 에이전트의 "
                 "secrets valueFrom에 넣어 등록한 뒤 update-service 하세요."),
        "ja": _t("API キーのシークレットが存在しない",
                 "エージェントは DD_API_KEY を Secrets Manager から読むようになりましたが、ARN は誰も作っていない"
                 "シークレットを指しています。エージェントのタスクが起動しません。",
                 ["aws ecs describe-tasks --desired-status STOPPED でタスクが止まった理由が見えます。",
                  "ECS はどのコンテナよりも先にシークレットを取得します。",
                  "aws secretsmanager describe-secret --secret-id <arn> で存在を確かめます。"],
                 "シークレットを作成し (aws secretsmanager create-secret --name datadog-api-key)、その ARN を"
                 "エージェントの secrets valueFrom に入れて登録し、update-service します。"),
    },
    "process-collection-off": {
        "en": _t("The process list is empty",
                 "Live Processes shows nothing for the cluster since the last agent change.",
                 ["Traces and metrics flow: only one data type is missing.",
                  "Which route carries processes to the intake?",
                  "Process collection is opt-in: DD_PROCESS_AGENT_ENABLED."],
                 "Set DD_PROCESS_AGENT_ENABLED=true (with /proc mounted at /host/proc) and update-service."),
        "ko": _t("프로세스 목록이 비어 있습니다",
                 "마지막 에이전트 변경 이후 Live Processes에 클러스터의 프로세스가 보이지 않습니다.",
                 ["트레이스와 메트릭은 흐릅니다: 한 가지 데이터만 없습니다.",
                  "프로세스는 어떤 경로로 인테이크에 가나요?",
                  "프로세스 수집은 옵트인입니다: DD_PROCESS_AGENT_ENABLED."],
                 "DD_PROCESS_AGENT_ENABLED=true로 설정하고(/proc를 /host/proc에 마운트) update-service 하세요."),
        "ja": _t("プロセス一覧が空",
                 "最後のエージェント変更以来、Live Processes にクラスターのプロセスが出ません。",
                 ["トレースとメトリクスは流れています。欠けているのは一種類のデータだけです。",
                  "プロセスはどのルートでインテークに届きますか?",
                  "プロセス収集はオプトインです: DD_PROCESS_AGENT_ENABLED。"],
                 "DD_PROCESS_AGENT_ENABLED=true を設定し (/proc を /host/proc にマウント)、update-service します。"),
    },
    "agent-health-check": {
        "en": _t("The agent's health check fails",
                 "The agent task definition's health check was edited by hand. ECS now reports the agent "
                 "UNHEALTHY, and data comes and goes.",
                 ["aws ecs describe-tasks shows each container's healthStatus.",
                  "Run the health check command yourself in the agent container: what does it print?",
                  'The docs\' check is ["CMD-SHELL", "agent health"].'],
                 'Set the datadog-agent healthCheck command back to ["CMD-SHELL", "agent health"], register, '
                 "update-service."),
        "ko": _t("에이전트 헬스 체크가 실패합니다",
                 "에이전트 태스크 정의의 헬스 체크를 손으로 고쳤습니다. ECS가 에이전트를 UNHEALTHY로 보고하고 "
                 "데이터가 들쭉날쭉합니다.",
                 ["aws ecs describe-tasks가 컨테이너마다 healthStatus를 보여 줍니다.",
                  "에이전트 컨테이너에서 헬스 체크 명령을 직접 실행해 보세요: 무엇이 출력되나요?",
                  '문서의 체크는 ["CMD-SHELL", "agent health"]입니다.'],
                 'datadog-agent의 healthCheck 명령을 ["CMD-SHELL", "agent health"]로 되돌리고 등록한 뒤 '
                 "update-service 하세요."),
        "ja": _t("エージェントのヘルスチェックが失敗する",
                 "エージェントのタスク定義のヘルスチェックが手で編集されました。ECS はエージェントを UNHEALTHY と"
                 "報告し、データが途切れ途切れです。",
                 ["aws ecs describe-tasks でコンテナごとの healthStatus が見えます。",
                  "エージェントのコンテナでヘルスチェックのコマンドを実行してみてください。何が出ますか?",
                  'ドキュメントのチェックは ["CMD-SHELL", "agent health"] です。'],
                 'datadog-agent の healthCheck コマンドを ["CMD-SHELL", "agent health"] に戻して登録し、'
                 "update-service します。"),
    },
}
